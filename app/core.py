"""The application object: settings, database, backends and services, wired once."""

from __future__ import annotations

from dataclasses import dataclass

from app.chat import ChatService
from app.config import Settings
from app.doc_chat import DocumentService
from app.heartbeat import Heartbeat
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
    heartbeat: Heartbeat
    recovered_replies: int = 0

    @classmethod
    def open(cls, settings: Settings, backends: BackendRegistry | None = None) -> App:
        db = Database(settings.db_url or default_url())
        db.upgrade()
        repo = Repository(db)
        heartbeat = Heartbeat(repo)
        # A reply whose writer stopped beating was cut off by a crash or a kill; say so instead of
        # pretending. Live ones (a server using the same database) keep streaming.
        recovered = heartbeat.sweep()
        registry = backends or BackendRegistry(settings)
        documents = DocumentService(repo, registry)
        chat = ChatService(repo, registry, documents, heartbeat)
        return cls(settings, db, repo, registry, chat, documents, heartbeat, recovered)

    def local_user_id(self) -> int:
        return self.repo.ensure_user(LOCAL_USER)

    def close(self) -> None:
        """Stop the models first: a generation still running must end before its model is freed."""
        try:
            self.backends.close()
        finally:
            self.heartbeat.close()
            self.db.close()
