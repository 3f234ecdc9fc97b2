"""The project's wallets pages."""

from __future__ import annotations

from fastapi import APIRouter

from paydesk.dashboard.security import DASHBOARD

router = APIRouter(prefix=f"{DASHBOARD}/projects", include_in_schema=False)
