"""The backward walk as a page: self-contained, the same walk as viz.backward_steps, drawn with
or without Graphviz; and, in a real headless Chromium, stepped through with Next to the end."""

import json
import os
import pathlib
import re
import shutil
import tempfile

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import blog, viz
from tinygrad_mlp.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARGS = dict(batch=4, hidden=8, seed=0)


def blog_steps(loss):
    """What backward_steps reports for the network `explain --html` draws."""
    X, Y, W1, W2 = blog.blog_example(ARGS["batch"], ARGS["hidden"], loss, ARGS["seed"])
    J, _ = blog.blog_network(X, Y, W1, W2, loss)
    return viz.backward_steps(J)


def page_data(page):
    blob = re.search(r'<script type="application/json" id="walk-data">(.*?)</script>', page, re.S)
    return json.loads(blob.group(1))


def first_label_line(step):
    """The first line of the node's label in the drawing, as to_dot writes it."""
    if step.is_leaf:
        return step.name
    return f"{step.name} = {step.op}" if step.named else step.op


@pytest.mark.parametrize("engine", ["dot", "layered"])
def test_the_page_holds_the_walk_backward_steps_reports(engine, tmp_path):
    if engine == "dot" and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    X, Y, W1, W2 = blog.blog_example(3, 5, "mse", 1)
    page = blog.explain_blog_html(X, Y, W1, W2, "mse", tmp_path / "walk.html", engine=engine)
    assert (tmp_path / "walk.html").read_text(encoding="utf-8") == page
    J, _ = blog.blog_network(X, Y, W1, W2, "mse")
    steps = viz.backward_steps(J)
    shown = page_data(page)["steps"]
    assert [s["name"] for s in shown] == [step.name for step in steps]
    for s, step in zip(shown, steps):
        assert float(s["norm"]) == pytest.approx(viz.graph.norm(step.grad), rel=1e-3)
        assert f"<title>{s['node']}</title>" in page          # each step's node is drawn
        assert (step.rule or "") in s["rule"]
    by_name = {s["name"]: s for s in shown}
    assert by_name["Z2"]["gradName"] == "δ2 = ∂J/∂Z2" and by_name["Z1"]["gradName"] == "δ1 = ∂J/∂Z1"
    for name in ("Z2", "Z1", "W2", "W1"):                     # the blog's formulas, checked
        assert by_name[name]["check"]["difference"] < 1e-6
    assert "(a2 − Y)·a2(1 − a2)" in by_name["Z2"]["check"]["label"]


def test_the_page_requests_nothing(tmp_path):
    page = blog.explain_blog_html(*blog.blog_example(2, 3, "ce", 0), "ce", engine="layered")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""\b(src|href)\s*=\s*["'](?!data:)""", page)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}          # an XML namespace, never fetched
    assert "@import" not in page and "url(" not in page


def test_without_graphviz_the_layered_layout_draws_each_node_and_edge(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    x = tm.Tensor([1.0, -2.0], requires_grad=True, name="x")
    y = (x * x).sigmoid().sum()
    svg = viz.graph_svg(y)
    assert 'class="layered"' in svg
    graph = viz.build_graph(y)
    assert svg.count('<g class="node">') == len(graph.nodes)
    assert svg.count('<g class="edge">') == len(graph.edges)      # x → Mul twice
    page = viz.explain_html(y)
    assert len(page_data(page)["steps"]) == len(viz.backward_steps(y))


@pytest.mark.parametrize("graphviz", [True, False])
def test_draw_labels_every_gradient_and_the_deltas(graphviz, monkeypatch):
    if graphviz and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    if not graphviz:
        monkeypatch.setattr(shutil, "which", lambda name: None)
    J, nodes = blog.blog_network(*blog.blog_example(2, 3, "mse", 0), "mse")
    J.backward(retain_graph=True)
    svg = viz.draw(J, gradients=True, deltas=True).svg
    assert "δ2 = ∂J/∂Z2 2×10" in svg and "δ1 = ∂J/∂Z1 2×3" in svg
    shown = svg.count("‖g‖=")
    assert shown == len(viz.backward_steps(J))               # every node that gets a gradient
    assert viz.draw(J).svg.count("‖g‖=") == shown             # (backward_steps kept them)
    assert "δ" not in viz.draw(J, gradients=True).svg


def test_checks_must_name_nodes_of_the_graph():
    x = tm.Tensor([1.0, 2.0], requires_grad=True, name="x")
    with pytest.raises(ValueError, match="not nodes of this graph"):
        viz.explain_html((x * 2).sum(), checks={"Z9": viz.Check("?", np.zeros(2))})


def test_cli_explain_html_writes_the_page(tmp_path, capsys):
    path = tmp_path / "walk.html"
    assert main(["explain", "--html", str(path), "--loss", "bce", "--batch", "2"]) == 0
    assert "open it in a browser" in capsys.readouterr().out
    assert len(page_data(path.read_text(encoding="utf-8"))["steps"]) >= 6
    assert main(["explain", "--html", str(tmp_path / "missing" / "walk.html")]) == 2   # usage
    assert "does not exist" in capsys.readouterr().err


# --- in a real browser -------------------------------------------------------------------------

def chromium():
    """A headless Chromium through selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("no browser: needs Debian's chromium and chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='walk-chromium-')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1600, "height": 1000, "deviceScaleFactor": 1,
                            "mobile": False})
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",      # still flow marks: a steady picture
                           {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]})
    return driver


def test_a_browser_steps_through_the_whole_walk(tmp_path):
    driver = chromium()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    try:
        path = tmp_path / "walk.html"
        assert main(["explain", "--html", str(path), "--batch", str(ARGS["batch"]), "--hidden",
                     str(ARGS["hidden"]), "--seed", str(ARGS["seed"])]) == 0
        url = path.as_uri()
        driver.get_log("performance")                           # drop the browser's start-up
        driver.get(url)
        steps = blog_steps("mse")
        screenshot = None
        for index, step in enumerate(steps):
            if index:
                driver.find_element(By.ID, "next").click()
            position = driver.find_element(By.ID, "position").text
            assert position == f"Step {index + 1} of {len(steps)}"
            current = driver.find_elements(By.CSS_SELECTOR, "#graph g.node.current")
            assert len(current) == 1
            label = current[0].find_element(By.TAG_NAME, "text").text
            assert label == first_label_line(step), position
            assert driver.find_element(By.ID, "step-title").text.startswith(step.name)
            shown = float(driver.find_element(By.ID, "grad-norm").text)
            assert shown == pytest.approx(viz.graph.norm(step.grad), rel=1e-3), position
            flowing = driver.find_elements(By.CSS_SELECTOR, "#graph g.edge.flow")
            expected = [p for p in viz.graph.inputs(step.tensor) if p.requires_grad]
            assert len(flowing) == len(expected), position
            if step.name == "Z2":                               # δ2, checked against the blog
                check = driver.find_element(By.ID, "check")
                assert check.is_displayed() and "δ2 = (a2 − Y)·a2(1 − a2)" in check.text
                driver.execute_script("document.activeElement.blur()")
                screenshot = driver.get_screenshot_as_png()
        assert driver.find_element(By.ID, "next").get_attribute("disabled") is not None
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.ARROW_LEFT)                         # the arrow keys step back ...
        assert driver.find_element(By.ID, "position").text == \
            f"Step {len(steps) - 1} of {len(steps)}"
        body.send_keys(Keys.HOME)                               # ... and Home to the start
        assert driver.find_element(By.ID, "position").text == f"Step 1 of {len(steps)}"
        x_node = next(g for g in driver.find_elements(By.CSS_SELECTOR, "#graph g.node")
                      if g.find_element(By.TAG_NAME, "text").text == "X (input)")
        x_node.click()                                          # any node's forward value
        assert driver.find_element(By.ID, "forward-name").text == "X"
        assert "4×64" in driver.find_element(By.ID, "forward-shape").text

        requests = [json.loads(entry["message"])["message"]
                    for entry in driver.get_log("performance")]
        sent = [m["params"] for m in requests if m["method"] == "Network.requestWillBeSent"]
        ours = {p["request"]["url"] for p in sent if p.get("documentURL") == url}
        assert ours == {url}, ours                              # the page itself, nothing else
        assert not [p["request"]["url"] for p in sent
                    if re.match(r"(https?|wss?|ftp):", p["request"]["url"])]
        assert driver.execute_script(
            "return performance.getEntriesByType('resource').length") == 0
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        assert errors == []
    finally:
        driver.quit()
    assert screenshot is not None and screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "walk.png").write_bytes(screenshot)
    # The README's picture, docs/walk.png, is this screenshot. It is written when missing, or
    # to the path in $TINYGRAD_MLP_WALK_PNG (set it to docs/walk.png to refresh the picture),
    # so that an ordinary run never changes a tracked file.
    target = os.environ.get("TINYGRAD_MLP_WALK_PNG") or ROOT / "docs" / "walk.png"
    if "TINYGRAD_MLP_WALK_PNG" in os.environ or not os.path.exists(target):
        pathlib.Path(target).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(target).write_bytes(screenshot)


# --- non-finite values, the policy, a projector (issue 19, items 13, 14, 24) ----------------------

def diverged_walk():
    """J = Σ x·w where x holds inf and NaN: the gradient of w and J itself are not finite, as
    after a diverged step."""
    x = tm.Tensor(np.array([[1.0, np.inf], [np.nan, 2.0]]), name="x")
    w = tm.Tensor(np.ones((2, 2)), requires_grad=True, name="w")
    return (x * w).sum()


def test_non_finite_values_are_strict_json_strings():
    with np.errstate(all="ignore"):
        page = viz.explain_html(diverged_walk(), engine="layered")
    blob = re.search(r'id="walk-data">(.*?)</script>', page, re.S).group(1)

    def refuse(constant):
        raise AssertionError(f"JSON.parse refuses {constant}")
    data = json.loads(blob, parse_constant=refuse)
    w_step = next(step for step in data["steps"] if step["name"] == "w")
    assert w_step["values"]["rows"] == [[1.0, "inf"], ["nan", 2.0]]


def inline_block(page, tag):
    return re.search(rf"<{tag}>(.*?)</{tag}>", page, re.S).group(1)


def test_the_policy_allows_only_the_pages_own_script_and_style():
    import base64
    import hashlib

    page = blog.explain_blog_html(*blog.blog_example(2, 3, "ce", 0), "ce", engine="layered")
    policy = re.search(r'Content-Security-Policy" content="([^"]*)"', page).group(1)
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        digest = hashlib.sha256(inline_block(page, tag).encode("utf-8")).digest()
        assert directives[directive] == f"'sha256-{base64.b64encode(digest).decode()}'"
    assert directives["form-action"] == "'none'" and directives["base-uri"] == "'none'"
    assert directives["default-src"] == "'none'"


def test_in_a_browser_nan_shows_an_injected_script_is_blocked_and_a_fragment_opens_a_step(
        tmp_path):
    driver = chromium()
    from selenium.webdriver.common.by import By

    try:
        with np.errstate(all="ignore"):
            viz.explain_html(diverged_walk(), tmp_path / "diverged.html")
        driver.get((tmp_path / "diverged.html").as_uri() + "#step-3")   # J, Mul, then w
        assert driver.find_element(By.ID, "position").text == "Step 3 of 3"
        assert driver.find_element(By.ID, "step-title").text.startswith("w")
        cells = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#grad-values td")]
        assert cells == ["1", "inf", "nan", "2"]
        driver.find_element(By.ID, "prev").click()
        assert driver.current_url.endswith("#step-2")             # the fragment follows the walk
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []

        page = (tmp_path / "diverged.html").read_text(encoding="utf-8")
        injected = page.replace("</body>", "<script>document.title = 'injected';</script>"
                                           "<div style=\"color: red\" id=\"styled\"></div></body>")
        (tmp_path / "injected.html").write_text(injected, encoding="utf-8")
        driver.get((tmp_path / "injected.html").as_uri())
        assert driver.title != "injected"                          # the policy blocked it
        assert driver.find_element(By.ID, "position").text.startswith("Step 1 of")  # ours ran
        color = driver.execute_script(
            "return getComputedStyle(document.getElementById('styled')).color")
        assert color != "rgb(255, 0, 0)"
    finally:
        driver.quit()


def test_on_a_1024_by_768_projector_labels_are_readable_and_tables_whole(tmp_path):
    driver = chromium()
    from selenium.webdriver.common.by import By

    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1024, "height": 768, "deviceScaleFactor": 1,
                                "mobile": False})
        path = tmp_path / "walk.html"
        assert main(["explain", "--html", str(path), "--batch", "4", "--hidden", "8",
                     "--values", "80"]) == 0
        steps = blog_steps("mse")
        z2 = next(i for i, step in enumerate(steps) if step.name == "Z2") + 1
        driver.get(path.as_uri() + f"#step-{z2}")
        assert driver.find_element(By.ID, "step-title").text.startswith("Z2")
        heights = driver.execute_script(
            "return Array.from(document.querySelectorAll('#graph g.node text'))"
            ".map(function (t) { return t.getBoundingClientRect().height; })")
        assert min(heights) >= 14, heights                         # ~8 px when squeezed
        table = driver.find_element(By.CSS_SELECTOR, "#grad-values table")
        headers = table.find_elements(By.CSS_SELECTOR, "thead th")
        assert [th.text for th in headers] == [""] + [str(j) for j in range(10)]
        box = driver.find_element(By.ID, "grad-values").rect
        last = headers[-1].rect
        assert last["x"] + last["width"] <= box["x"] + box["width"] + 1   # all 10 columns seen
        assert headers[1].value_of_css_property("position") == "sticky"
        current = driver.find_element(By.CSS_SELECTOR, "#graph g.node.current").rect
        graph = driver.find_element(By.ID, "graph").rect
        assert graph["x"] <= current["x"] and \
            current["x"] + current["width"] <= graph["x"] + graph["width"]   # scrolled to it
        driver.save_screenshot(str(tmp_path / "projector.png"))
        if os.environ.get("TINYGRAD_MLP_PROJECTOR_PNG"):       # to look at it
            shutil.copy(tmp_path / "projector.png", os.environ["TINYGRAD_MLP_PROJECTOR_PNG"])
    finally:
        driver.quit()
