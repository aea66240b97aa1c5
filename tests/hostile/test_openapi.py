"""The published schema: OpenAPI 3.1, host and plugin routes, credentials and
error answers declared, and a browsable page that loads nothing from elsewhere."""

import re

PLUGINS = ["lnurlp", "withdraw", "tpos", "splitpayments"]


async def test_schema_and_offline_page(fulmen) -> None:
    client = await fulmen.start(plugins=PLUGINS)
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200, r.text
    schema = r.json()
    assert schema["openapi"].startswith("3.1")
    paths = schema["paths"]
    for path in ("/api/v1/payments", "/api/v1/wallet", "/lnurlp/api/v1/links",
                 "/withdraw/api/v1/lnurl/cb/{unique_hash}", "/tpos/api/v1/tposs"):
        assert path in paths, path
    create = paths["/api/v1/payments"]["post"]
    assert {"400", "401", "429"} <= set(create["responses"])
    assert schema["components"]["securitySchemes"]["ApiKey"]["name"] == "X-Api-Key"
    assert "text/csv" in paths["/api/v1/payments/export.csv"]["get"]["responses"]["200"]["content"]
    page = await client.get("/schema")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "POST /api/v1/payments" in page.text
    assert not re.search(r"<script|<link|(src|href)=['\"]?(https?:)?//", page.text), "offline page"
    link = re.search(r"href='([^']+)'", page.text).group(1)
    assert (await client.get(link)).status_code == 200
