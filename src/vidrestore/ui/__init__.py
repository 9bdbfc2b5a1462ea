"""``vidrestore ui``: restore clips in the browser (a Gradio app; ``pip install 'vidrestore[ui]'``).

:func:`build_app` lays out the app and wires it to :mod:`vidrestore.workflows.ui`; :func:`serve`
starts it. Scripts call its ``restore`` endpoint with ``gradio_client``.
"""

from .app import build_app, serve

__all__ = ["build_app", "serve"]
