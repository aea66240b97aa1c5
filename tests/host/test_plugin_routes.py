from litestar import get

from fulmen import Host, hookimpl
from fulmen.testing import plugin


class Echo:
    @hookimpl
    def register_routes(self):
        @get("/whoami")
        async def whoami(host: Host) -> dict:
            return {"signup": host.settings.allow_signup, "plugins": sorted(host.plugins)}

        return [whoami]


async def test_plugin_handlers_receive_the_host_as_a_dependency(fulmen):
    client = await fulmen.start(plugins=[plugin("echo", Echo())])
    r = await client.get("/echo/whoami")
    assert r.status_code == 200 and r.json() == {"signup": True, "plugins": ["echo"]}
