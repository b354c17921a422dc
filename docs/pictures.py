"""The README's pictures of the tutor, taken from a real demo: the dashboard opened on the database
`tinytutor demo` left behind, in headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium; nothing downloaded), and screenshots of an experiment's chart, a confusion cell's explained
messages and a report's labels that look wrong.

    .venv/bin/tinytutor demo --dir /tmp/demo        # the embedded MiniLM, a few minutes
    .venv/bin/python docs/pictures.py /tmp/demo     # writes docs/pictures/*.png
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.settings import load_settings  # noqa: E402
from service import Caller  # noqa: E402
from service.runtime import Runtime  # noqa: E402
from web.app import make_app, start_site  # noqa: E402

OUT = ROOT / "docs" / "pictures"


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,1400", "--disable-background-networking"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)


def take(driver, base: str, link: str, experiment: int, job: int, cell: tuple[str, str]) -> None:
    from urllib.parse import urlencode

    from selenium.webdriver.common.by import By

    driver.get(link)
    driver.find_element(By.CSS_SELECTOR, "form button").click()
    driver.get(f"{base}/experiments/{experiment}")
    driver.find_element(By.TAG_NAME, "main").screenshot(str(OUT / "experiment.png"))
    driver.get(f"{base}/jobs/{job}/cell?" + urlencode({"label": cell[0], "predicted": cell[1]}))
    driver.find_element(By.TAG_NAME, "main").screenshot(str(OUT / "explained.png"))
    driver.get(f"{base}/jobs/{job}")
    suspects = driver.find_element(By.ID, "suspects")
    driver.execute_script("arguments[0].scrollIntoView()", suspects)
    suspects.screenshot(str(OUT / "suspects.png"))


async def main(demo: Path) -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    os.environ.setdefault("TINYTUTOR_WEB_SECRET", "pictures for the README, long enough")
    data = demo / "data"
    settings = load_settings(ROOT / "config.toml").changed(
        storage={"data_dir": str(data), "database_url": f"sqlite+aiosqlite:///{data / 'tinytutor.db'}"},
        web={"public_url": base})
    OUT.mkdir(parents=True, exist_ok=True)
    async with await Runtime.open(settings) as rt:
        rivera = Caller("demo-class", "rivera", instructor=True, name="Ms Rivera")
        experiment = (await rt.service.experiments(rivera, everyone=True))[0]
        job = 1  # Alice's 3-layer model
        rep = await rt.service.report(rivera, job)
        examples = json.loads(rep.test_examples_json.read_text(encoding="utf-8"))
        wrong = [(x["label"], x["predicted"]) for x in examples if x["label"] != x["predicted"]]
        cell = max(set(wrong), key=wrong.count)  # the cell with the most mistakes
        runner = await start_site(make_app(rt.service, settings), "127.0.0.1", port)
        driver = await asyncio.to_thread(browser)
        try:
            link = await rt.service.mint_link(rivera)
            await asyncio.to_thread(take, driver, base, link, experiment.id, job, cell)
        finally:
            driver.quit()
            await runner.cleanup()
    print(f"wrote {', '.join(p.name for p in sorted(OUT.glob('*.png')))} to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]).resolve())))
