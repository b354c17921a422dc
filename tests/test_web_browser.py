"""The dashboard in a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium
with the system driver; nothing is downloaded): sign in with a link, watch the queue update while a
job trains, cancel a job with its button, open a report with both images loaded and click a cell of its
confusion matrix. Screenshots go to the test's temporary directory (and to $TINYTUTOR_SCREENSHOTS when
set, for the README)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from helpers import ALICE, BOB, GOOD, HIDDEN, TEACH, free_port, status_is, training, wait_for
from queue_helpers import slow_run_job

from web.app import make_app, start_site

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the routes are tested on both

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and DRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs them as root)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shot(driver, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / f"{name}.png"))
    if os.environ.get("TINYTUTOR_SCREENSHOTS"):
        out = Path(os.environ["TINYTUTOR_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out / f"{name}.png"))


async def test_an_instructor_runs_the_queue_from_the_page(make, db, browser, tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By

    monkeypatch.setenv("TINYTUTOR_WEB_SECRET", "a browser test secret, long enough")
    port = free_port()
    service, sched = make(target=slow_run_job,  # each training step is slowed: time to watch and cancel
                          web={"public_url": f"http://127.0.0.1:{port}", "refresh_seconds": 0.5})
    await service.set_quotas(TEACH, max_epochs=100)
    await service.create_assignment(TEACH, "topics", (HIDDEN, "hidden.csv"), description="Three topics of chat")
    quick = await service.submit(ALICE, GOOD, "topics.csv", name="alice-topics", params={"epochs": 2},
                                 assignment="topics")
    slow = await service.submit(BOB, GOOD, "topics.csv", name="bob-long-run", params={"epochs": 60})
    runner = await start_site(make_app(service, service.settings), "127.0.0.1", port)
    await sched.start()

    def run(fn, *args):  # Selenium blocks: in a thread, so this loop keeps serving the page
        return asyncio.to_thread(fn, *args)

    def js(script):
        return browser.execute_script(script)

    def click_and_wait(element_id: str, url_end: str):
        """Click, then wait for the page the form redirects to (a click returns before it loads)."""
        from selenium.webdriver.support.ui import WebDriverWait

        browser.find_element(By.ID, element_id).click()
        WebDriverWait(browser, 30).until(lambda d: d.current_url.split("?")[0].endswith(url_end)
                                         and d.execute_script("return document.readyState") == "complete")

    try:
        link = await service.mint_link(TEACH)
        await run(browser.get, link)
        await run(click_and_wait, "signin", "/queue")
        js("window.ttMarker = 'loaded once'")  # gone if the page reloads: updates must come without one

        await wait_for(status_is(db, quick.job.id, "succeeded", "failed"), timeout=120)
        await wait_for(training(db, slow.job.id), timeout=120)

        def row(job_id):
            return js(f"const r = document.getElementById('job-{job_id}'); "
                      "return r ? [r.dataset.status, r.innerText] : null")

        async def shown(job_id, status):
            r = await run(row, job_id)
            return r if r and r[0] == status else None

        await wait_for(lambda: shown(quick.job.id, "succeeded"), timeout=30)
        first = (await wait_for(lambda: shown(slow.job.id, "running"), timeout=30))[1]

        async def moved():
            r = await run(row, slow.job.id)
            return r if r and r[0] == "running" and r[1] != first else None

        await wait_for(moved, timeout=30)  # the progress cell changed while we watched
        assert js("return window.ttMarker") == "loaded once"
        await run(shot, browser, tmp_path, "queue")

        await run(click_and_wait, f"cancel-{slow.job.id}", "/queue")
        await wait_for(status_is(db, slow.job.id, "cancelled"), timeout=30)
        await wait_for(lambda: shown(slow.job.id, "cancelled"), timeout=30)

        await run(browser.get, f"http://127.0.0.1:{port}/jobs/{quick.job.id}")
        loaded = await run(js, "return ['confusion', 'curve'].map(id => { const i = document.getElementById(id); "
                               "return i.complete && i.naturalWidth > 100; })")
        assert loaded == [True, True]
        assert "Classification report" in browser.page_source and "alice-topics" in browser.page_source
        await run(shot, browser, tmp_path, "report")
        # a cell of the confusion matrix, clicked: the page of its test examples, as many as the cell said
        first = await run(js, "const a = document.querySelector('#confusion-cells a'); a.click(); return a.innerText")
        await wait_for(lambda: run(js, "return document.getElementById('cell-examples') !== null "
                                       "&& document.readyState === 'complete'"), timeout=30)
        listed = await run(js, "return document.querySelectorAll('#cell-examples tr').length - 1")
        assert listed == int(first) and "/cell?label=" in browser.current_url
        for page, name, expect in (("students", "students", "Alice"), ("assignments", "assignments", "topics"),
                                   ("assignments/topics", "leaderboard", "alice-topics"), ("quotas", "quotas", "Save")):
            await run(browser.get, f"http://127.0.0.1:{port}/{page}")
            assert expect in browser.page_source, page
            await run(shot, browser, tmp_path, name)
        assert (tmp_path / "queue.png").stat().st_size > 10_000
    finally:
        await sched.stop(requeue=False)
        await runner.cleanup()
