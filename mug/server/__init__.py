"""The participant server: ``mug.deploy`` and what it runs on (Tornado, SQLite)."""

from mug.server.deploy import Deployment, deploy
from mug.server.export import export

__all__ = ["Deployment", "deploy", "export"]
