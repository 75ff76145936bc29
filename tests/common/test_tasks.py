"""Background tasks: kept alive while they run, a failure reaches the log with its name, and
close() cancels what is left and waits for it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chaosproxy.common.tasks import TaskGroup


async def test_a_finished_task_is_no_longer_held() -> None:
    group = TaskGroup()
    release = asyncio.Event()

    async def work() -> int:
        await release.wait()
        return 7

    task = group.spawn(work(), "work")
    assert len(group) == 1 and task.get_name() == "work"
    release.set()
    assert await task == 7
    await asyncio.sleep(0)  # done callbacks run on the loop's next pass
    assert len(group) == 0


async def test_a_failing_task_is_logged_with_its_name_and_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = TaskGroup()

    async def broken() -> None:
        raise RuntimeError("disk on fire")

    task = group.spawn(broken(), "flusher")
    with pytest.raises(RuntimeError):
        await task
    await asyncio.sleep(0)
    [record] = [r for r in caplog.records if r.name == "chaosproxy.tasks"]
    assert record.levelno == logging.ERROR
    assert "flusher" in record.getMessage()
    assert record.exc_info is not None and "disk on fire" in str(record.exc_info[1])
    assert len(group) == 0


async def test_close_cancels_what_is_left_and_waits_for_its_cleanup(
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = TaskGroup()
    started = asyncio.Event()
    cleaned: list[str] = []

    async def forever(name: str) -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            cleaned.append(name)

    tasks = [group.spawn(forever(n), n) for n in ("a", "b")]
    await started.wait()
    await group.close()
    assert sorted(cleaned) == ["a", "b"]
    assert all(t.cancelled() for t in tasks)
    assert not [r for r in caplog.records if r.name == "chaosproxy.tasks"]  # no false alarm


async def test_close_of_an_empty_group_returns() -> None:
    await TaskGroup().close()
