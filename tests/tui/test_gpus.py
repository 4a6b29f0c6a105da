"""The GPU line under the status bar (Pilot): each GPU's utilisation and memory, the experiment holding it, refreshed
by a worker thread; no line at all where there is no GPU."""

from __future__ import annotations

from pathlib import Path

from nightlab.agent.store import Store
from nightlab.sandbox.gpustats import GpuStat
from nightlab.tui.app import NightlabApp
from nightlab.tui.widgets.statusbar import GpuLine, StatusBar

from tuikit import Populated, run, wait_until

GIB_MB = 1024


def test_status_bar_shows_gpu_state_and_who_holds_each(populated: tuple[Path, Populated]) -> None:
    root, ids = populated
    store = Store(root / ".nightlab" / "nightlab.db")
    run_dir = root / ".nightlab" / "runs" / str(ids.proposed)
    job = store.add_job(ids.proposed, str(run_dir), str(run_dir / "output.log"), "gpu1")
    store.update_job(job.id, state="running")
    store.close()
    load = {"util": 87}

    def fake_gpus() -> list[GpuStat]:  # what NVML reports (the test changes the first GPU's load below)
        return [GpuStat(0, "NVIDIA H200", load["util"], 40 * GIB_MB, 140 * GIB_MB),
                GpuStat(1, "NVIDIA H200", 3, 1 * GIB_MB, 140 * GIB_MB)]

    async def body() -> None:
        app = NightlabApp(root, start="never", grace_s=0.0, poll_s=0.1, gpus=fake_gpus, gpu_poll_s=0.05)
        async with app.run_test(size=(160, 40)) as pilot:
            line = app.main.query_one(GpuLine)  # type: ignore[union-attr]
            await wait_until(pilot, lambda: "gpu0" in line.render().plain and app.snapshot is not None, what="GPUs")
            await pilot.pause()
            assert line.render().plain.strip() == f"gpu0 87% 40/140G · gpu1 3% 1/140G #{ids.proposed}"
            app.main.show_gpus(fake_gpus(), {0: "other-proj"})  # type: ignore[union-attr]  # another project's lease
            await pilot.pause()
            assert line.render().plain.strip() == f"gpu0 87% 40/140G other-proj · gpu1 3% 1/140G #{ids.proposed}"
            assert line.display and line.size.height == 1
            assert line.region.y == app.main.query_one(StatusBar).region.bottom  # right under the status line
            load["util"] = 12
            await wait_until(pilot, lambda: "gpu0 12%" in line.render().plain, what="a refresh")

    run(body())


def test_no_gpu_no_gpu_line(populated: tuple[Path, Populated]) -> None:
    root, _ = populated

    async def body() -> None:
        app = NightlabApp(root, start="never", grace_s=0.0, poll_s=0.1, gpus=lambda: [], gpu_poll_s=0.05)
        async with app.run_test(size=(160, 40)) as pilot:
            line = app.main.query_one(GpuLine)  # type: ignore[union-attr]
            await wait_until(pilot, lambda: app.snapshot is not None, what="first snapshot")
            await wait_until(pilot, lambda: not any(w.name == "GPU poller" and w.is_running for w in app.workers),
                             what="the GPU poller to give up")
            await pilot.pause()
            assert not line.display and line.size.height == 0

    run(body())
