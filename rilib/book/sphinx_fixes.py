"""A Sphinx extension for two console errors the pinned Jupyter Book 1 stack puts on every page of the book.

- sphinx-thebe adds its inline configuration script (``const THEBE_JS_URL = ...``) twice, and the second copy
  throws "Identifier 'THEBE_JS_URL' has already been declared": :func:`dedupe_scripts` keeps the first copy of
  every script.
- pydata-sphinx-theme reads the colour mode as ``localStorage.getItem("mode") || "{{ default_mode }}"`` and logs
  "Got invalid theme mode" on a reader's first visit while ``default_mode`` is empty: ``_config.yml`` sets it.

``_config.yml`` loads this module through ``sphinx.extra_extensions``; the browser test (tests/test_browser.py)
fails if either error comes back.
"""

from __future__ import annotations


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated entries (same file or inline body, same attributes) from a page's scripts. An inline script
    has the file name None or "" depending on who added it: both count as the same."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        attributes = getattr(js, "attributes", {}) or {}
        key = (str(getattr(js, "filename", js) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
