"""The dashboard in a real browser: Debian's headless Chromium, driven by Selenium, against live
services (`python -m app serve`) holding real data: generated texts encoded by the real model,
folded, trained, reclustered once, evaluated and mapped by the in-process worker.

Chromium comes from `make browser` (Debian's chromium and chromium-driver); CI sets
REQUIRE_BROWSER=1 so a missing browser fails instead of skipping. The screenshots are written to
the test's tmp dir, and also to $DASHBOARD_SCREENSHOTS when set (docs/ holds the committed ones).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
KEY = "dashboard-read-key-0123456789"
CLUSTERS = 5
TOPICS = {
    "space": ["rocket launch to mars", "astronauts on the space station", "a distant galaxy",
              "nasa moon landing", "telescope images of saturn", "alien planet exploration"],
    "cooking": ["pasta with fresh tomato sauce", "baking sourdough bread", "chocolate cake recipe",
                "italian cooking class", "grilled vegetables with olive oil", "ramen noodle soup"],
    "football": ["football match highlights", "premier league goals", "world cup final",
                 "penalty shootout drama", "football transfer news", "champions league night"],
    "jazz": ["jazz piano trio live", "miles davis trumpet solo", "saxophone jazz standards",
             "late night jazz club", "bebop improvisation", "swing big band records"],
    "garden": ["growing tomatoes in the garden", "pruning roses in spring", "vegetable garden tips",
               "composting kitchen waste", "planting tulip bulbs", "watering plants in summer"],
}  # fmt: skip
USERS_PER_TOPIC = 24  # 120 users
SERVICE_SETTINGS = {
    "APP_CLUSTERS": str(CLUSTERS),
    "APP_MIN_USERS_FIRST_FIT": "60",
    "APP_BATCH_SIZE": "64",  # several versions per wave
    "APP_EVALUATE_INTERVAL_SECONDS": "0.5",
    "APP_CONSOLIDATE_INTERVAL_SECONDS": "0",
    "APP_POLL_INTERVAL_SECONDS": "0.05",
    "APP_LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def catalogue() -> list[dict[str, str]]:
    return [
        {"item_id": f"{topic}-{i}", "text": text}
        for topic, texts in TOPICS.items()
        for i, text in enumerate(texts)
    ]


def wave(n: int) -> list[dict[str, Any]]:
    """Three events per user on items of their own topic; in later waves every sixth user also
    reads about the next topic over, so some users drift and the clusters move a little."""
    names = list(TOPICS)
    events = []
    for t, topic in enumerate(names):
        for u in range(USERS_PER_TOPIC):
            for k in range(3):
                drifts = n > 0 and u % 6 == 0 and k == 2
                about = names[(t + 1) % len(names)] if drifts else topic
                events.append(
                    {
                        "event_id": f"w{n}-{topic}-{u}-{k}",
                        "user_id": f"{topic}-{u}",
                        "type": "like" if k % 2 else "view",
                        "item_id": f"{about}-{(u + k + n) % len(TOPICS[about])}",
                    }
                )
    return events


def wait_for(what: str, predicate: Callable[[], Any], timeout: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


class Service:
    """`python -m app serve` on a free port, against a migrated SQLite file."""

    def __init__(self, database: Path, log: Path, **settings: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        env |= {"APP_DATABASE_URL": f"sqlite:///{database}", **SERVICE_SETTINGS, **settings}
        migrate = subprocess.run(
            [sys.executable, "-m", "app", "migrate"], env=env, cwd=ROOT, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert migrate.returncode == 0, migrate.stderr
        self.env, self.log = env, log
        self.url = f"http://127.0.0.1:{free_port()}"
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--port", self.url.rsplit(":", 1)[1]],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        headers = {"Authorization": f"Bearer {KEY}"} if "APP_API_KEYS" in settings else {}
        self.http = httpx.Client(base_url=self.url, timeout=30, headers=headers)
        wait_for("the service", lambda: self.http.get("/readyz").status_code == 200, 120, log)

    def run(self, *args: str) -> None:
        """A CLI command against the same database (e.g. a recluster)."""
        result = subprocess.run(
            [sys.executable, "-m", "app", *args], env=self.env, cwd=ROOT, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr

    def settled(self) -> bool:
        """Everything applied, trained, evaluated and mapped, and still so a moment later."""

        def state() -> tuple[Any, ...] | None:
            stats = self.http.get("/v1/stats").json()
            mapped = self.http.get("/v1/dashboard/map").json()["model_version"]
            if stats["events"]["pending"] or mapped is None or mapped != stats["model"]["version"]:
                return None
            return stats["events"]["applied"], mapped

        first = state()
        time.sleep(1.0)
        return first is not None and state() == first

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = "Debian's chromium and chromium-driver are not installed: run `make browser`"
    if os.environ.get("REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service with the worker in-process, fed three waves of events and one recluster."""
    folder = tmp_path_factory.mktemp("live")
    service = Service(folder / "live.db", folder / "live.log")
    try:
        assert service.http.post("/v1/items", json={"items": catalogue()}).status_code < 300
        for n in range(2):
            response = service.http.post("/v1/events", json={"events": wave(n)})
            assert response.status_code == 202, response.text
            wait_for(f"wave {n} to be mapped", service.settled, 240, service.log)
        service.run("recluster", "--k", str(CLUSTERS))  # a new generation, marked on the charts
        response = service.http.post("/v1/events", json={"events": wave(2)})
        assert response.status_code == 202, response.text
        wait_for("the last wave to be mapped", service.settled, 240, service.log)
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def browser(chromium: tuple[str, str]) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1366,900",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
    ):
        options.add_argument(argument)  # fmt: skip
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(executable_path=chromium[1]), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """Errors the page logged since the last call (the log is drained by reading it)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def open_dashboard(driver: Any, url: str) -> None:
    driver.get(f"{url}/dashboard")
    wait(driver, lambda d: d.find_element("id", "board").get_attribute("data-ready") == "true")


def screenshot(driver: Any, name: str, folder: Path, *, width: int, mobile: bool) -> None:
    """The whole page at `width` CSS pixels, as a phone (mobile viewport) or a laptop."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": mobile},
    )
    time.sleep(0.5)  # let the layout settle at the new width
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the screen"
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    height = metrics["cssContentSize"]["height"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"captureBeyondViewport": True,
         "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
    )  # fmt: skip
    png = base64.b64decode(shot["data"])
    (folder / name).write_bytes(png)
    if target := os.environ.get("DASHBOARD_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / name).write_bytes(png)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_dashboard_shows_the_live_model(live: Service, browser: Any, tmp_path: Path):
    from selenium.webdriver.common.by import By

    open_dashboard(browser, live.url)
    # The map: one mark per cluster of the mapped model version.
    cluster_map = live.http.get("/v1/dashboard/map").json()
    assert len(cluster_map["centers"]) == CLUSTERS
    marks = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#map-svg circle.center"))
    assert sorted(int(m.get_attribute("data-cluster")) for m in marks) == list(range(CLUSTERS))
    points = browser.find_elements(By.CSS_SELECTOR, "#map-svg circle.point")
    assert len(points) == len(cluster_map["points"]) == USERS_PER_TOPIC * len(TOPICS)
    # Hovering a mark names its cluster's keywords and size.
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element(marks[0]).perform()
    tip = browser.find_element(By.ID, "map-tip")
    centre = next(c for c in cluster_map["centers"] if c["cluster_id"] == 0)
    wait(browser, lambda d: tip.is_displayed())
    assert f"Cluster 0 · {centre['size']} users" in tip.text
    assert all(word in tip.text for word in centre["keywords"])

    # The pipeline panel, the clusters and the quality charts, refits marked.
    tiles = browser.find_element(By.ID, "pipeline-tiles").text
    stats = live.http.get("/v1/stats").json()
    assert f"{stats['events']['received']:,}" in tiles and "running" in tiles
    assert not browser.find_element(By.ID, "waiting").is_displayed()
    cards = browser.find_elements(By.CSS_SELECTOR, "#cluster-list article.cluster")
    assert len(cards) == CLUSTERS
    clusters = live.http.get("/v1/clusters").json()["clusters"]
    for card, cluster in zip(cards, clusters, strict=True):
        shown = [li.get_attribute("title") for li in card.find_elements(By.CSS_SELECTOR, "li")]
        assert shown == [i["text"] for i in cluster["representative_items"]] and shown
    assert browser.find_elements(By.CSS_SELECTOR, "#quality-charts [data-mark=generation]")

    # Looking a user up shows the cluster the API answers.
    user = "jazz-7"
    browser.find_element(By.ID, "lookup-input").send_keys(user)
    browser.find_element(By.CSS_SELECTOR, "#lookup-form button").click()
    shown = wait(browser, lambda d: d.find_element(By.ID, "user-cluster"))
    answer = live.http.get(f"/v1/users/{user}/cluster").json()
    assert answer["status"] == "assigned"
    assert int(shown.get_attribute("data-cluster")) == answer["cluster_id"]
    history = live.http.get(f"/v1/users/{user}/cluster/history").json()["assignments"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#user-history tbody tr")
    assert len(rows) == len(history) >= 1  # one row per change of cluster

    screenshot(browser, "dashboard-laptop.png", tmp_path, width=1366, mobile=False)
    screenshot(browser, "dashboard-phone.png", tmp_path, width=390, mobile=True)
    assert console_errors(browser) == []

    # Data is text, never markup: an id that looks like HTML is shown as typed.
    probe = '<img id="injected" src="x">'
    field = browser.find_element(By.ID, "lookup-input")
    field.clear()
    field.send_keys(probe)
    browser.find_element(By.CSS_SELECTOR, "#lookup-form button").click()
    missing = wait(browser, lambda d: d.find_element(By.ID, "user-missing"))
    assert probe in missing.text and not browser.find_elements(By.ID, "injected")
    # The only errors since are the browser's own notes of the two 404s that lookup got.
    others = [e for e in console_errors(browser) if "404 (Not Found)" not in e["message"]]
    assert others == []


def test_with_keys_the_page_asks_for_one_and_keeps_it_out_of_urls(
    live: Service, browser: Any, tmp_path: Path
):
    from selenium.webdriver.common.by import By

    keyed = Service(
        Path(live.env["APP_DATABASE_URL"].removeprefix("sqlite:///")),
        tmp_path / "keyed.log",
        APP_WORKER="off",
        APP_API_KEYS=f"{KEY}:read",
    )
    try:
        browser.get(f"{keyed.url}/dashboard")
        form = wait(browser, lambda d: d.find_element(By.ID, "key-form"))
        wait(browser, lambda d: form.is_displayed())
        assert not browser.find_element(By.ID, "board").is_displayed()
        browser.find_element(By.ID, "key-input").send_keys(KEY)
        form.find_element(By.CSS_SELECTOR, "button").click()
        wait(browser, lambda d: d.find_element(By.ID, "board").get_attribute("data-ready"))
        marks = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#map-svg circle.center"))
        assert len(marks) == CLUSTERS
        assert KEY not in browser.current_url
        assert browser.execute_script("return sessionStorage.length") == 1
        assert KEY in browser.execute_script("return Object.values(sessionStorage)")
        assert browser.execute_script("return localStorage.length") == 0
        assert console_errors(browser) == []
        browser.find_element(By.ID, "forget-key").click()
        wait(browser, lambda d: form.is_displayed())
        assert browser.execute_script("return sessionStorage.length") == 0
    finally:
        keyed.stop()


def test_before_the_first_model_the_page_says_how_many_users_it_waits_for(
    browser: Any, tmp_path: Path
):
    from selenium.webdriver.common.by import By

    empty = Service(tmp_path / "empty.db", tmp_path / "empty.log", APP_WORKER="off")
    try:
        open_dashboard(browser, empty.url)
        waiting = browser.find_element(By.ID, "waiting")
        assert waiting.is_displayed() and "Waiting for 60 more users" in waiting.text
        assert "No map yet" in browser.find_element(By.ID, "map-svg").text
        assert console_errors(browser) == []
    finally:
        empty.stop()
