"""The typed admin client: the one place ctl and the experiment runner speak the API from."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosproxy.admin.client import AdminClient, AdminError, Unreachable, admin_url
from chaosproxy.process.runtime import Runtime
from tests.admin.conftest import SCENARIO


async def test_client_uploads_starts_and_reads_back(admin: Runtime) -> None:
    async with AdminClient(admin.admin_url) as c:
        assert await c.health()
        await c.upload("sent", SCENARIO.replace("name: small", "name: sent"))
        st = await c.start("sent", seed=3)
        assert st["scenario"]["name"] == "sent" and st["scenario"]["seed"] == 3
        events = await c.events()
        assert events["events"][0]["kind"] == "scenario_started"
        assert (await c.stop())["stopped"] == "sent"


async def test_api_errors_carry_status_message_and_request_id(admin: Runtime) -> None:
    async with AdminClient(admin.admin_url) as c:
        with pytest.raises(AdminError) as e:
            await c.start("nope")
    assert e.value.status == 404 and e.value.request_id and admin.admin_url in str(e.value)


async def test_no_answer_is_unreachable_naming_the_url(refused_url: str) -> None:
    async with AdminClient(refused_url, timeout=2) as c:
        with pytest.raises(Unreachable, match=refused_url.split("//")[1]):
            await c.status()


async def test_token_is_sent_on_every_call(
    demo_upstream: str,
    start_proxy,
    scenario_dir: Path,  # type: ignore[no-untyped-def]
) -> None:
    rt = await start_proxy(demo_upstream, scenario_dir=str(scenario_dir), admin_token="t0k")
    async with AdminClient(rt.admin_url) as c:
        with pytest.raises(AdminError) as e:
            await c.stop()
        assert e.value.status == 401
    async with AdminClient(rt.admin_url, token="t0k") as c:
        assert (await c.stop())["stopped"] is None


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("127.0.0.1:8081", "http://127.0.0.1:8081"),
        ("0.0.0.0:8081", "http://127.0.0.1:8081"),
        ("http://sidecar:8081/", "http://sidecar:8081"),
    ],
)
def test_admin_url_accepts_the_run_flag_form(given: str, url: str) -> None:
    assert admin_url(given) == url
