class HQError(Exception):
    """An expected failure with a stable code; the API renders it in the one error shape.

    Each app subclasses it once (``EngineError``) and picks the HTTP status where it raises.
    """

    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None, details=None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        if status is not None:
            self.status = status

    def as_dict(self) -> dict:
        """The one error shape of every JSON answer (API, websocket, middleware)."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}
