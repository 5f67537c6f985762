"""``parley web``: a Flask chat page over the SDK (``docs/web.md``).

``create_app(base_url=..., api_key=..., tools=...)`` makes the app; ``ToolRegistry`` and
``default_tools()`` are the app's own tools (``current_time`` and ``calculator`` built in).
"""

from parley.sdk.tools import ToolRegistry
from parley.web.app import create_app
from parley.web.tools import default_tools

__all__ = ["ToolRegistry", "create_app", "default_tools"]
