"""The shared kernel of the services' domains: what a business rule may raise (`Rejected`,
`Missing`), the aggregate base, and calendar days as the contract counts them. Pure Python:
a domain that imports only this (and its own modules) stays free of I/O."""

from .aggregates import Aggregate, same_again
from .calendar import SHANGHAI, day_of, month_of
from .rejections import Missing, Rejected, RejectionCode

__all__ = ["SHANGHAI", "Aggregate", "Missing", "Rejected", "RejectionCode", "day_of", "month_of", "same_again"]
