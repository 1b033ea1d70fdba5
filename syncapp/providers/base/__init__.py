"""The provider contract: adapters, page and write result types."""

from .adapter import CrmAdapter, CustomFieldResult, RemotePage, WriteResult

__all__ = ["CrmAdapter", "CustomFieldResult", "RemotePage", "WriteResult"]
