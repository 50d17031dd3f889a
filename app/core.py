"""The application object: settings, database, backends and services, wired once."""

from __future__ import annotations

from dataclasses import dataclass

from app.chat import ChatService
from app.config import Settings
from app.doc_chat import DocumentService
from app.registry import BackendRegistry
from storage.db import Database, default_url
from storage.repo import Repository

LOCAL_USER = "local"


@dataclass
class App:
    settings: Settings
    db: Database
    repo: Repository
    backends: BackendRegistry
    chat: ChatService
    documents: DocumentService
    recovered_replies: int = 0

    @classmethod
    def open(cls, settings: Settings, backends: BackendRegistry | None = None) -> App:
        db = Database(settings.db_url or default_url())
        db.upgrade()
        repo = Repository(db)
        # A reply still marked streaming was cut off by a crash or a kill; say so instead of pretending.
        recovered = repo.mark_streaming_interrupted()
        registry = backends or BackendRegistry(settings)
        documents = DocumentService(repo, registry)
        return cls(settings, db, repo, registry, ChatService(repo, registry, documents), documents, recovered)

    def local_user_id(self) -> int:
        return self.repo.ensure_user(LOCAL_USER)

    def close(self) -> None:
        self.backends.close()
        self.db.close()
