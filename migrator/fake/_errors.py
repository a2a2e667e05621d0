"""The fake Zuora's error answers: ApiError and the body shapes the spec and the SDK give them.

Pure functions of a status and a message; which shape a tenant sees is the `error_bodies` switch.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Zuora answer other than 2xx: status and the body in the shape the spec gives it."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def errors_list(status: int, *titles: str) -> ApiError:
    """§1.12 `{errors: [WorkflowError]}` (export, import, list, get; run)."""
    return ApiError(
        status, {"errors": [{"title": t, "code": "invalid", "status": status} for t in titles]}
    )


def capital_errors(status: int, *messages: str) -> ApiError:
    """§1.12 `DeleteWorkflowError` `{Errors: [str]}` (delete workflow, PATCH 404, delete version)."""
    return ApiError(status, {"Errors": list(messages)})


# The official SDK (PyPI `zuora-sdk`, zuora_sdk/api/workflows_api.py `_response_types_map`)
# declares these bodies for workflow operations:
#   401 → ProxyUnauthorizedResponse `{message}` on every operation;
#   400 and 403 → CommonErrorResponse `{code: int, message}` on every operation except that
#   export (400, 404) and run (400, 409) declare PostRunWorkflow400Response `{errors: [...]}`;
#   404 on delete workflow and PATCH, 403 on delete version → DeleteWorkflowError `{Errors: [str]}`;
#   PATCH 422 → ValidationErrors; run 406 → `{errors, parameters}`.
# Only 400/403 `{errors}` bodies and 401 change shape; the others are already as declared.
SDK_ERRORS_LIST_OPERATIONS = frozenset({"export", "run"})
# Zuora's 8-digit codes end in a two-digit category (DEV:docs_guides_error-codes): 10 permission
# denied, 20 invalid value, 40 not found. The leading digits are [I].
_SDK_CODES = {400: 50000020, 403: 50000010, 404: 50000040}
SDK_UNAUTHORIZED = {"message": "Authentication error"}


def sdk_shape(operation: str, status: int, body: Any) -> Any:
    """The body the SDK models declare for `operation` and `status` (see the table above)."""
    if status == 401:
        return dict(SDK_UNAUTHORIZED)
    if (
        status in (400, 403)
        and operation not in SDK_ERRORS_LIST_OPERATIONS
        and isinstance(body, dict)
        and isinstance(body.get("errors"), list)
    ):
        titles = [str(e.get("title", "")) for e in body["errors"] if isinstance(e, dict)]
        return {"code": _SDK_CODES[status], "message": "; ".join(titles)}
    return body
