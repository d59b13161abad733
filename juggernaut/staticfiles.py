"""Static files named by their content's hash once collected, so WhiteNoise serves them with far-future
caching and a new release never meets a stale copy in a browser or at the edge."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's hashed, compressed storage, except before ``collectstatic`` has run: then there is no
    manifest, every file keeps its plain name and WhiteNoise serves it from the finders (a checkout run
    with DEBUG off, ``check --deploy`` in CI), instead of every ``{% static %}`` failing."""

    def stored_name(self, name: str) -> str:
        if not self.hashed_files:
            return name
        return super().stored_name(name)
