"""API docs that work offline: /docs and /redoc load only assets voxgate serves itself, and
the OpenAPI document has the bearer scheme (Authorize), examples and the error envelope.

The pages and the document need no models, so most tests run the app in-process without
its lifespan; the last one uses Swagger UI in Debian's Chromium against a real server, with
every request that leaves the server blocked.
"""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import start_server, stop_server
from fastapi.testclient import TestClient

from voxgate.api.app import create_app
from voxgate.config import Settings


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path_factory.mktemp("docs"))))


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def page_urls(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.urls + re.findall(r"url: *'([^']+)'", html) + re.findall(r'spec-url="([^"]+)"', html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_local_assets_and_those_are_served(client, page):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    urls = page_urls(response.text)
    assert any(u.endswith(".js") for u in urls) and "/openapi.json" in urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from elsewhere"
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url


def test_swagger_ui_keeps_the_token_and_asks_no_validator(client):
    html = client.get("/docs").text
    assert '"persistAuthorization": true' in html and '"validatorUrl": null' in html


@pytest.fixture(scope="module")
def spec(client) -> dict:
    return client.get("/openapi.json").json()


def test_the_bearer_scheme_guards_the_api_but_not_login(spec):
    scheme = spec["components"]["securitySchemes"]["HTTPBearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer") and "API key" in scheme["description"]
    paths = spec["paths"]
    for path, method in [
        ("/v1/chat", "post"),
        ("/v1/chat/completions", "post"),
        ("/v1/audio/speech", "post"),
        ("/v1/audio/transcriptions", "post"),
        ("/v1/conversations", "get"),
        ("/v1/me", "get"),
    ]:
        assert paths[path][method]["security"] == [{"HTTPBearer": []}], path
    assert "security" not in paths["/v1/auth/login"]["post"] and "security" not in paths["/healthz"]["get"]


def _schema(spec: dict, ref_or_schema: dict) -> dict:
    if "$ref" in ref_or_schema:
        return spec["components"]["schemas"][ref_or_schema["$ref"].rsplit("/", 1)[1]]
    return ref_or_schema


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/chat", "text"),
        ("/v1/chat/completions", "messages"),
        ("/v1/audio/speech", "input"),
        ("/v1/auth/login", "username"),
    ],
)
def test_request_bodies_have_real_examples(spec, path, field):
    body = _schema(spec, spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"])
    examples = body["examples"]
    assert examples and all(field in example for example in examples)
    assert "string" not in str(examples)  # no placeholder junk


def test_the_upload_form_is_not_prefilled_with_text(spec):
    form = spec["paths"]["/v1/chat"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["audio"]["format"] == "binary"
    # Swagger UI fills a field without an example with "string" (text beside a file: 400); an
    # empty example is sent empty, and an empty form field counts as not sent.
    optional = {name: p for name, p in form["properties"].items() if name != "audio" and p.get("default") is None}
    assert optional and all(p.get("examples") == [""] for p in optional.values()), optional


def test_replies_have_examples(spec):
    for path in ("/v1/chat", "/v1/auth/login"):
        reply = _schema(spec, spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"])
        assert reply["examples"], path


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/v1/chat", "post", {"400", "401", "413", "415", "422", "429", "503"}),
        ("/v1/audio/transcriptions", "post", {"400", "401", "413", "415", "503"}),
        ("/v1/auth/login", "post", {"401", "422", "429"}),
        ("/v1/conversations/{conversation_id}", "get", {"401", "404"}),
        ("/readyz", "get", {"503"}),
    ],
)
def test_error_responses_are_documented_with_the_envelope(spec, path, method, statuses):
    responses = spec["paths"][path][method]["responses"]
    assert statuses <= responses.keys()
    for status in statuses:
        content = responses[status]["content"]["application/json"]
        assert _schema(spec, content["schema"])["properties"].keys() == {"error"}
        assert content["example"]["error"].keys() == {"type", "code", "message"}
        assert responses[status]["description"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's own 422 shape is not ours


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    started = start_server(tmp_path_factory.mktemp("docs-server"))
    yield started
    stop_server(started)


def try_it_out(page, operation_id: str) -> tuple[str, str]:
    """Open an operation, run it with what the form holds (its example), return (status, body)."""
    operation = page.locator(f"#operations-{operation_id}")
    execute = operation.get_by_role("button", name="Execute")
    if not execute.is_visible():
        operation.locator(".opblock-summary").click()
        operation.get_by_role("button", name="Try it out").click()
    if operation.get_by_role("button", name="Clear").is_visible():
        operation.get_by_role("button", name="Clear").click()  # the answer shown is the next one
    execute.click()
    answer = operation.locator(".live-responses-table .response")
    answer.locator(".response-col_status").wait_for(timeout=120_000)
    return (
        answer.locator(".response-col_status").inner_text().strip(),
        answer.locator(".response-col_description pre").first.inner_text(),
    )


def test_authorize_and_try_it_out_work_in_a_browser_with_no_way_out(docs_server):
    from playwright.sync_api import sync_playwright

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail(f"{chromium} is missing: `make test` installs Debian's chromium package")
    elsewhere: list[str] = []

    def only_the_server(route) -> None:
        if route.request.url.startswith(docs_server.url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 2400})
            page.route("**/*", only_the_server)
            page.goto(f"{docs_server.url}/docs")
            page.locator(".swagger-ui .info .title").wait_for()
            status, body = try_it_out(page, "accounts-me_v1_me_get")
            assert status == "401" and json.loads(body)["error"]["code"] == "missing_token"
            page.get_by_role("button", name="Authorize").first.click()
            page.locator("#auth-bearer-value").fill(docs_server.key)
            page.locator(".modal-ux button.authorize").click()
            page.locator(".modal-ux button.btn-done").click()
            status, body = try_it_out(page, "accounts-me_v1_me_get")
            assert status == "200" and json.loads(body)["is_admin"] is True
            status, body = try_it_out(page, "chat-chat_v1_chat_post")  # the example: the capital of France
            assert status == "200" and "paris" in json.loads(body)["reply"].lower()
        finally:
            browser.close()
    assert elsewhere == []
