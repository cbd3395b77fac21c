"""Static web sites from containers (Swift's staticweb middleware).

A container with `X-Container-Meta-Web-Index` (e.g. `index.html`) and/or
`X-Container-Meta-Web-Listings: true` is served as a web site to anonymous GET/HEAD requests
(read access still comes from its ACL, typically `.r:*,.rlistings`) and to token requests
that ask for it with `X-Web-Mode: true`:

- `/container` redirects (301) to `/container/`; `/container/` and `/container/dir/` serve the
  directory's index object, else an HTML listing (`Web-Listings`, styled by
  `Web-Listings-CSS`, titled with `Web-Listings-Label`), else 404 "Web Listing Disabled".
- `/container/dir` (no object there, but objects under `dir/`) redirects to `dir/`; a
  zero-byte object of type `Web-Directory-Type` (default `application/directory`) counts as
  a directory, not a file.
- With `X-Container-Meta-Web-Error: error.html`, errors are answered with the body of the
  object `<status><name>` (e.g. `404error.html`) and the original status.
"""
from __future__ import annotations

import html
from urllib.parse import quote

from starlette.responses import Response

from pocketstack.object import capabilities

capabilities.register("staticweb", {})


def _api():
    from pocketstack.object import api

    return api


def _settings(account: str, container: str) -> dict | None:
    info = _api().storage().container_info(account, container)
    if info is None:
        return None
    meta = {k.lower(): (v or "").strip() for k, v in info["metadata"].items()}
    get = lambda name: meta.get(f"x-container-meta-web-{name}", "")  # noqa: E731
    return {"index": get("index"), "error": get("error"), "listings": get("listings"),
            "css": get("listings-css"), "label": get("listings-label"),
            "dir_type": get("directory-type") or "application/directory"}


def wanted(req) -> bool:
    """Anonymous (or TempURL) GET/HEAD, or a token request with `X-Web-Mode: true`."""
    if req.method not in ("GET", "HEAD"):
        return False
    web_mode = req.headers.get("x-web-mode", "").lower() in ("true", "1", "yes", "on", "t", "y")
    return web_mode or not req.token


def handle(req, account: str, container: str, obj: str | None):
    """The static-web answer, or None to serve the request normally."""
    if not wanted(req) or not container:
        return None
    conf = _settings(account, container)
    if conf is None or not (conf["index"] or conf["listings"]):
        if conf is not None and not obj and req.headers.get("x-web-mode", "").lower() == "true":
            raise _api().SwiftError(404)
        return None
    api = _api()
    path = req.raw.url.path
    if not obj:
        try:
            api.authorize(req, account, False, container)
        except api.SwiftError as err:
            return _error_page(req, account, container, conf, err)
        if not path.endswith("/"):
            return _redirect(req)
        if conf["index"]:
            found = _object(req, account, container, conf["index"])
            if found is not None:
                return found
        return _listing(req, account, container, conf, "")
    # an object path
    try:
        api.authorize(req, account, False, container, obj)
        response = api.get_object(req, account, container, obj)
        if not (response.headers.get("content-type") == conf["dir_type"]
                and int(response.headers.get("content-length") or 0) <= 1):
            return response
    except api.SwiftError as err:
        if err.code != 404:
            return _error_page(req, account, container, {**conf, "error": ""}, err)
    base = obj if obj.endswith("/") else obj + "/"
    if conf["index"]:
        found = _object(req, account, container, base + conf["index"])
        if found is not None:
            return found if path.endswith("/") else _redirect(req)
    if not path.endswith("/"):
        if api.storage().list_objects(account, container, limit=1, prefix=base, delimiter="/"):
            return _redirect(req)
        return _error_page(req, account, container, conf, api.SwiftError(404))
    return _listing(req, account, container, conf, obj)


def _object(req, account, container, name):
    api = _api()
    try:
        api.authorize(req, account, False, container, name)
        return api.get_object(req, account, container, name)
    except api.SwiftError as err:
        if err.code == 404:
            return None
        raise


def _redirect(req) -> Response:
    url = req.raw.url
    location = f"{url.scheme}://{url.netloc}{quote(url.path)}/"
    return Response(status_code=301, headers={"Location": location, "Content-Length": "0",
                                              "X-Trans-Id": _api().trans_id()},
                    media_type="text/html; charset=UTF-8")


def _error_page(req, account, container, conf, err) -> Response:
    api = _api()
    if conf.get("error"):
        try:
            page = api.get_object(req, account, container, f"{err.code}{conf['error']}")
            page.status_code = err.code
            return page
        except api.SwiftError:
            pass
    raise err


def _human(n: int) -> str:
    value, suffix = float(n), ""
    for unit in ("Ki", "Mi", "Gi", "Ti", "Pi"):
        if value < 1024:
            break
        value, suffix = value / 1024, unit
    return f"{n}B" if not suffix else f"{int(round(value))}{suffix}"


def _listing(req, account, container, conf, prefix: str) -> Response:
    api = _api()
    label = req.raw.url.path
    if conf["label"]:
        label = conf["label"] + "/" + prefix
    title = html.escape(label)
    css_path = ""
    if conf["css"]:
        css = conf["css"]
        css_path = quote(css, ":/") if css.startswith(("/", "http://", "https://")) else \
            "../" * prefix.count("/") + quote(css)
    head = f'<!DOCTYPE html>\n<html>\n <head>\n  <title>Listing of {title}</title>\n'
    head += (f'  <link rel="stylesheet" type="text/css" href="{css_path}" />\n' if css_path else
             '  <style type="text/css">\n   h1 {font-size: 1em; font-weight: bold;}\n'
             '   th {text-align: left; padding: 0px 1em 0px 1em;}\n   td {padding: 0px 1em 0px 1em;}\n'
             '   a {text-decoration: none;}\n  </style>\n')
    if conf["listings"].lower() not in ("true", "1", "yes", "on", "t", "y"):
        body = head + ("</head>\n<body>  <h1>Web Listing Disabled</h1>   <p>The owner of this web site has "
                       "disabled web listing.   <p>If you are the owner of this web site, you can enable   web "
                       "listing by setting X-Container-Meta-Web-Listings.</p>")
        if conf["index"]:
            body += (f"<h1>Index File Not Found</h1> <p>The owner of this web site has set  <b>X-Container-Meta-"
                     f"Web-Index: {html.escape(conf['index'])}</b>.  However, this file is not found.</p>")
        body += " </body>\n</html>\n"
        if conf["error"]:
            return _error_page(req, account, container, conf, api.SwiftError(404))
        return Response(body, status_code=404, media_type="text/html; charset=UTF-8",
                        headers={"X-Trans-Id": api.trans_id()})
    items = api.storage().list_objects(account, container, limit=api.LISTING_LIMIT, prefix=prefix, delimiter="/")
    if prefix and not items:
        return _error_page(req, account, container, conf, api.SwiftError(404))
    rows = []
    if prefix:
        rows.append('   <tr id="parent" class="item">\n    <td class="colname"><a href="../">../</a></td>\n'
                    '    <td class="colsize">&nbsp;</td>\n    <td class="coldate">&nbsp;</td>\n   </tr>\n')
    for item in items:
        if "subdir" in item:
            sub = item["subdir"][len(prefix):]
            rows.append(f'   <tr class="item subdir">\n    <td class="colname"><a href="./'
                        f'{quote(sub).replace(".", "%2E")}">{html.escape(sub)}</a></td>\n'
                        '    <td class="colsize">&nbsp;</td>\n    <td class="coldate">&nbsp;</td>\n   </tr>\n')
    for item in items:
        if "name" in item:
            name = item["name"][len(prefix):]
            types = " ".join("type-" + html.escape(t.lower()) for t in item["content_type"].split("/"))
            date = html.escape(api.iso(item["last_modified"])).split(".")[0].replace("T", " ")
            rows.append(f'   <tr class="item {types}">\n    <td class="colname"><a href="./'
                        f'{quote(name).replace(".", "%2E")}">{html.escape(name)}</a></td>\n'
                        f'    <td class="colsize">{_human(item["bytes"])}</td>\n'
                        f'    <td class="coldate">{date}</td>\n   </tr>\n')
    body = head + (f' </head>\n <body>\n  <h1 id="title">Listing of {title}</h1>\n  <table id="listing">\n'
                   '   <tr id="heading">\n    <th class="colname">Name</th>\n    <th class="colsize">Size</th>\n'
                   '    <th class="coldate">Date</th>\n   </tr>\n') + "".join(rows) + \
        "  </table>\n </body>\n</html>\n"
    return Response(body if req.method == "GET" else b"", media_type="text/html; charset=UTF-8",
                    headers={"X-Trans-Id": api.trans_id(), "Content-Length": str(len(body.encode()))})
