"""Report writers: one self-contained HTML page, Markdown with PNGs beside it, escaped text.

The last tests open the written page in headless Chromium when it is installed (CI
installs Debian's ``chromium``): a screenshot, then a probe for broken images and script
errors, checked against a copy with a deliberately broken image.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from dropoutlab.report.html import (
    Section,
    format_table,
    pipe_table,
    render_html,
    render_markdown,
    write_report,
)
from dropoutlab.report.plots import png_bytes

matplotlib.use("Agg")

PNG = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert('x')</script> & more"


def small_figure(values=(1, 3, 2)) -> Figure:
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot(values)
    return fig


def summary_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "config": ["dropout.conv=0.0", "dropout.conv=0.2"],
            "n": [3, 3],
            "test_acc_mean": [0.90251, 0.9175],
            "test_acc_ci_low": [0.8912, 0.9001],
            "test_acc_ci_high": [0.9138, 0.9349],
            "gap_acc_mean": [0.05, -0.0125],
            "p_value": [0.0004, 0.2345],
            "test_loss": [0.31234567, 0.3],
        }
    )


def sections() -> list[Section]:
    return [
        Section(
            "Accuracy vs rate",
            paragraphs=["As the rate grows, train accuracy falls.", "Second <b>paragraph</b>."],
            figures=[
                ("Accuracy vs dropout.conv", small_figure(), "train and test accuracy lines"),
                ("Gap", png_bytes(small_figure((2, 1, 0))), "gap line"),
            ],
            tables=[("Per configuration", summary_table())],
        ),
        Section(
            f"Learning curves {EVIL}",
            figures=[("Accuracy vs dropout.conv", small_figure((0, 1)), "curves")],
            tables=[pd.DataFrame({"epoch": [1, 2], "val_acc_mean": [0.5, 0.61]})],
        ),
    ]


class Collect(HTMLParser):
    """Every tag with its attributes, in order."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse(page: str) -> list[tuple[str, dict]]:
    parser = Collect()
    parser.feed(page)
    return parser.tags


# ----------------------------------------------------------------------------------------


def test_html_is_one_self_contained_page_with_inlined_pngs():
    page = render_html("Study", sections(), findings=["first", "second"])
    assert "http://" not in page and "https://" not in page
    # Not even a protocol-relative address outside the (base64) data URIs.
    assert "//" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    tags = parse(page)
    names = [t for t, _ in tags]
    assert "script" not in names and "link" not in names and "iframe" not in names
    images = [attrs for tag, attrs in tags if tag == "img"]
    assert len(images) == 3
    for attrs in images:
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix)
        data = base64.b64decode(attrs["src"][len(prefix) :], validate=True)
        assert data.startswith(PNG)
        # Decoding the whole image catches truncation, which browsers draw without complaint.
        pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert pixels.shape[:2] == (int(attrs["height"]), int(attrs["width"]))
        assert attrs["alt"]
    # Any src= or url( in the page is one of those data URIs.
    assert page.count('src="') == 3 == page.count('src="data:image/png;base64,')
    assert "url(" not in page
    assert all(attrs.get("href", "#").startswith("#") for _, attrs in tags)
    viewport = [a for t, a in tags if t == "meta" and a.get("name") == "viewport"]
    assert viewport and "width=device-width" in viewport[0]["content"]
    assert "max-width: 100%" in page and "overflow-x: auto" in page


def test_findings_come_first_in_order_and_all_text_is_escaped():
    page = render_html(f"Title {EVIL}", sections(), findings=[EVIL, "second finding"])
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in page
    assert "Second &lt;b&gt;paragraph&lt;/b&gt;." in page
    findings_at = page.index('id="findings"')
    assert findings_at < page.index("Accuracy vs rate</h2>")
    assert page.index(EVIL.replace("<", "&lt;")[:10]) < page.index("second finding")
    markdown = render_markdown(f"Title {EVIL}", sections(), ".", findings=[EVIL])
    assert not re.search(r"(?<!\\)<[A-Za-z/]", markdown)  # every < that could open a tag is escaped
    assert "1. \\<script>alert('x')\\</script> & more" in markdown


def test_markdown_escapes_for_markdown_not_for_html():
    """``Holm p < 0.001`` reads as itself in report.md, not as ``Holm p &lt; 0.001``."""
    section = Section("S", paragraphs=["Holm p < 0.001 & p > 0.05", "# not a heading", "a &amp; b"],
                      tables=[pd.DataFrame({"config": ["x < y"], "p_value": [0.0001]})])  # fmt: skip
    markdown = render_markdown("t", [section], findings=["dropout.conv=0.2: Holm p < 0.001"])
    assert "&lt;" not in markdown and "&gt;" not in markdown
    assert "1. dropout.conv=0.2: Holm p < 0.001" in markdown
    assert "Holm p < 0.001 & p > 0.05" in markdown
    assert "\\# not a heading" in markdown and "a \\&amp; b" in markdown  # an entity would be decoded
    assert "| x < y | <0.001 |" in markdown


def test_tables_show_accuracies_in_percent_and_intervals_in_one_column():
    shown = format_table(summary_table())
    assert list(shown.columns) == [
        "configuration",
        "seeds",
        "test accuracy (%) mean [CI]",
        "gap accuracy mean (pp)",  # no interval columns: nothing to merge
        "p",
        "test loss",
    ]
    # a no-break space inside the brackets: a narrow column breaks before the interval only
    assert shown["test accuracy (%) mean [CI]"].tolist() == [
        "90.25 [89.12,\u00a091.38]",
        "91.75 [90.01,\u00a093.49]",
    ]
    assert shown["gap accuracy mean (pp)"].tolist() == ["+5.00", "\u22121.25"]
    assert shown["p"].tolist() == ["<0.001", "0.234"]
    assert shown["test loss"].tolist() == ["0.3123", "0.3000"]
    assert shown["seeds"].tolist() == ["3", "3"]
    page = render_html("Study", sections())
    assert "90.25 [89.12,\u00a091.38]" in page and "61.00" in page


def test_headers_are_words_not_column_names():
    table = pd.DataFrame({"config": ["a"], "on_line": [True], "effect_size": [0.5], "p_adjusted": [0.01],
                          "significant": [True], "seeds_needed": [4.0], "diff": [0.01], "ci_low": [0.0],
                          "ci_high": [0.02]})  # fmt: skip
    table.attrs["units"] = {"diff": "pp", "ci_low": "pp", "ci_high": "pp"}
    table.attrs["ci"] = {"diff": "simultaneous 95% CI"}
    assert list(format_table(table).columns) == [
        "configuration", "on the rate line", "effect size", "Holm p", "significant (Holm)", "seeds needed",
        "difference (pp) [simultaneous 95% CI]",
    ]  # fmt: skip
    page = render_html("t", [Section("s", tables=[("main", table)])])
    assert "p_adjusted" not in page and "effect_size" not in page and "on_line" not in page
    assert '<td class="text">a</td>' in page and '<td class="num">0.010</td>' in page


def test_a_details_table_is_folded_under_its_caption():
    more = pd.DataFrame({"config": ["a"], "best_epoch": [3]})
    more.attrs["details"] = True
    page = render_html(
        "t", [Section("s", tables=[("main", pd.DataFrame({"config": ["a"]})), ("More", more)])]
    )
    assert page.count("<details>") == 1 and "<summary>More</summary>" in page
    assert page.index("<summary>More</summary>") < page.index("best epoch")


def test_compare_differences_on_accuracy_are_percentage_points():
    table = pd.DataFrame(
        {
            "config": ["a"],
            "metric": ["test_acc"],
            "diff": [0.0123],
            "ci_low": [0.001],
            "ci_high": [np.nan],
            "significant": [True],
            "seeds_needed": [np.inf],
        }
    )
    shown = format_table(table, merge_ci=False)
    assert shown["difference (pp)"].tolist() == ["+1.23"]
    assert shown["ci low (pp)"].tolist() == ["+0.10"]
    assert shown["ci high (pp)"].tolist() == ["\u2013"]
    assert shown["significant (Holm)"].tolist() == ["yes"]
    assert shown["seeds needed"].tolist() == ["\u221e"]


def test_tables_read_spaced_names_and_declared_units():
    table = pd.DataFrame(
        {
            "config": ["a"],
            "test acc": [0.9],
            "test acc ci_low": [0.89],
            "test acc ci_high": [0.91],
            "gap acc (train - test)": [0.05],
            "diff": [0.01],
            "ci_low": [0.0],
            "ci_high": [0.02],
        }
    )
    table.attrs["units"] = {"diff": "pp", "ci_low": "pp", "ci_high": "pp"}
    shown = format_table(table[list(table.columns)])  # attrs survive column selection
    assert shown.iloc[0].to_dict() == {
        "configuration": "a",
        "test accuracy (%) [CI]": "90.00 [89.00,\u00a091.00]",
        "gap accuracy (train - test) (pp)": "+5.00",
        "difference (pp) [CI]": "+1.00 [+0.00,\u00a0+2.00]",
    }
    table.attrs["units"] = {"diff": "percent"}
    with pytest.raises(ValueError, match="units"):
        format_table(table)


def test_pipe_table_aligns_numbers_right_and_escapes_pipes():
    table = pd.DataFrame({"config": ["a|b"], "val_acc": [0.5]})
    assert pipe_table(table).splitlines() == [
        "| configuration | val accuracy (%) |",
        "|:---|---:|",
        "| a\\|b | 50.00 |",
    ]


def test_write_report_writes_html_markdown_and_pngs_the_markdown_links_to(tmp_path):
    out = tmp_path / "new" / "report"
    paths = write_report(out, "Study", ["a finding"], sections())
    assert paths["html"] == out / "report.html" and paths["markdown"] == out / "report.md"
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["accuracy-vs-dropout.conv-2.png", "accuracy-vs-dropout.conv.png", "gap.png"]
    assert sorted(k for k in paths if k.endswith(".png")) == pngs
    markdown = paths["markdown"].read_text()
    links = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", markdown)
    assert [alt for alt, _ in links] == ["train and test accuracy lines", "gap line", "curves"]
    for _, target in links:
        assert (out / target).read_bytes().startswith(PNG)
    assert "| configuration | seeds | test accuracy (%) mean \\[CI\\] |" in markdown
    # The HTML inlines the very bytes written beside it.
    page = paths["html"].read_text()
    for name in pngs:
        encoded = base64.b64encode((out / name).read_bytes()).decode()
        assert encoded in page


def test_figure_names_are_unique_and_stable_and_markdown_follows_image_dir(tmp_path):
    twice = [Section("Same", figures=[("Fig", small_figure(), "a"), ("Fig", small_figure(), "b")])]
    first = write_report(tmp_path / "a", "t", [], twice)
    second = write_report(tmp_path / "b", "t", [], twice)
    names = [k for k in first if k.endswith(".png")]
    assert names == ["fig.png", "fig-2.png"]
    assert names == [k for k in second if k.endswith(".png")]
    markdown = render_markdown("t", twice, image_dir="figures")
    assert "![a](figures/fig.png)" in markdown and "![b](figures/fig-2.png)" in markdown
    named = [Section("S", figures=[("Learning curves for x", small_figure(), "a", "curves-hidden1-0.5")])]
    assert [k for k in write_report(tmp_path / "c", "t", [], named) if k.endswith(".png")] == [
        "curves-hidden1-0.5.png"
    ]


def test_markdown_escapes_user_text_so_an_image_in_a_name_stays_text():
    evil = "![t](http://x/y.png)"
    section = Section(
        f"Study {evil}", paragraphs=[f"config *{evil}*"], tables=[pd.DataFrame({"config": [evil]})]
    )
    markdown = render_markdown(evil, [section], findings=[f"{evil} is best"], exploratory=[evil])
    assert not re.search(r"!\[[^\]]*\]\(", markdown)  # no image syntax left
    assert "!\\[t\\](http://x/y.png)" in markdown
    assert "\\*" in markdown  # emphasis markers escaped too
    page = render_html(evil, [section], findings=[evil])
    assert "<img" not in page


def test_section_refuses_bytes_that_are_not_png():
    with pytest.raises(ValueError, match="not a PNG"):
        Section("s", figures=[("f", b"GIF89a...", "alt")])
    with pytest.raises(TypeError):
        Section("s", figures=[("f", small_figure())])


# ----------------------------------------------------------------------------------------
# Headless Chromium


def chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def skip_or_fail_without_chromium() -> None:
    """Skip, except where DROPOUTLAB_REQUIRE_CHROMIUM=1 (``.ci/run`` sets it): there, fail."""
    reason = "chromium is not installed (CI installs it: apt-get install -y chromium)"
    if os.environ.get("DROPOUTLAB_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"{reason}; DROPOUTLAB_REQUIRE_CHROMIUM=1 makes this a failure")
    pytest.skip(reason)


def test_missing_chromium_fails_when_required(monkeypatch):
    monkeypatch.setenv("DROPOUTLAB_REQUIRE_CHROMIUM", "1")
    with pytest.raises(pytest.fail.Exception, match="DROPOUTLAB_REQUIRE_CHROMIUM=1"):
        skip_or_fail_without_chromium()
    monkeypatch.delenv("DROPOUTLAB_REQUIRE_CHROMIUM")
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        skip_or_fail_without_chromium()


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Appended to a copy of the page: on load, write the count of broken images and every
# error (script errors and failed resource loads) into the DOM for --dump-dom to show.
PROBE = """<script>
window.__errors = [];
// A dialog would block headless Chromium until the timeout: record it as an error instead.
window.alert = window.confirm = window.prompt = function (m) { window.__errors.push("dialog: " + m); };
window.onerror = function (message) { window.__errors.push(String(message)); };
window.addEventListener("error", function (e) {
  if (e.target && e.target.tagName) { window.__errors.push("failed to load " + e.target.tagName); }
}, true);
window.addEventListener("load", function () {
  var images = document.images, broken = 0;
  for (var i = 0; i < images.length; i++) {
    if (!images[i].complete || images[i].naturalWidth === 0) { broken++; }
  }
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images: images.length, broken: broken, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def probe(binary: str, tmp_path: Path, page: str, name: str) -> dict:
    copy = tmp_path / name
    copy.write_text(page.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    done = run_chromium(binary, tmp_path, "--dump-dom", copy.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe output (rc {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture
def written_report(tmp_path):
    return write_report(tmp_path / "report", "Study", [EVIL, "second"], sections())


def test_chromium_renders_the_report_to_a_nontrivial_screenshot(written_report, tmp_path):
    binary = chromium()
    if binary is None:
        skip_or_fail_without_chromium()
    shot = tmp_path / "shot.png"
    done = run_chromium(
        binary,
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        written_report["html"].as_uri(),
    )
    assert shot.exists(), f"no screenshot (rc {done.returncode}): {done.stderr[-2000:]}"
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1200)
    rgb = (pixels[..., :3] * 255).astype(np.uint32)
    colours = np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])
    assert len(colours) > 50  # text, figures and tables, not a blank or error page


def test_chromium_loads_every_image_with_no_script_error(written_report, tmp_path):
    binary = chromium()
    if binary is None:
        skip_or_fail_without_chromium()
    page = written_report["html"].read_text(encoding="utf-8")
    assert probe(binary, tmp_path, page, "probed.html") == {
        "images": 3,
        "broken": 0,
        "errors": [],
    }
    # The probe can see a failure: a copy with a broken image and a failing script.
    broken = page.replace(
        "</main>", '<img src="data:image/png;base64,AAAA" alt="x"><script>nope()</script></main>'
    )
    result = probe(binary, tmp_path, broken, "broken.html")
    assert result["images"] == 4 and result["broken"] == 1
    assert any("nope" in e for e in result["errors"])


# ----------------------------------------------------------------------------------------
# A whole report, as `dropoutlab report` writes it, at 1280 px


SLOTS = ["dropout.input", "dropout.hidden1", "dropout.hidden2", "optimizer.weight_decay"]


def long_label_study(seeds: int = 7) -> pd.DataFrame:
    """A runs table (``Store.runs()`` layout) with long configuration names: four parameters,
    a rate sweep and configurations off it, a shared offset per seed and small noise."""
    gen = np.random.default_rng(3)
    offsets = gen.normal(0, 0.004, seeds)
    cells = [((0.0, 0.0, 0.0, 0.0), 0.90), ((0.0, 0.1, 0.0, 0.0), 0.90), ((0.0, 0.3, 0.0, 0.0), 0.93),
             ((0.0, 0.5, 0.0, 0.0), 0.86), ((0.2, 0.5, 0.5, 0.0), 0.88), ((0.2, 0.5, 0.5, 0.0001), 0.89)]  # fmt: skip
    rows = []
    for values, mean in cells:
        params = dict(zip(SLOTS, values, strict=True))
        for seed in range(seeds):
            acc = mean + offsets[seed] + gen.normal(0, 0.002)
            rows.append({"id": f"{values}-{seed}", "config": ",".join(f"{k}={v}" for k, v in params.items()),
                         "seed": seed, "status": "completed", "test_acc": acc, "test_loss": 1 - acc,
                         "final_train_acc": acc + 0.03, "final_train_eval_acc": acc + 0.05,
                         "final_val_acc": acc + 0.005, "best_epoch": 9, **params})  # fmt: skip
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = SLOTS
    return runs


def run_until_decided(runs: pd.DataFrame):
    """The looks ``dropoutlab run --until-decided`` would store for ``runs`` (every seed run at
    every look, for brevity), and the analysis that reads them."""
    from dropoutlab.report.analysis import StudyData, _analyze
    from dropoutlab.report.decide import Design, decide

    base = runs["config"].iloc[0]
    design = Design(base, 0.01, 0.05, start=3, step=2, max_seeds=int(runs["seed"].max()) + 1)
    looks = []
    for number, seeds in enumerate(design.grid(), start=1):
        table = runs[runs["seed"] < seeds]
        decision = decide(table, design)
        looks.append({**decision.to_dict(), "seeds": decision.look, "spent": len(table), "look": number,
                      "seeds_run": {str(c): seeds for c in table["config"].unique()}})  # fmt: skip
        if decision.done:
            break
    return _analyze(StudyData.from_runs(runs), "long-names", looks=tuple(looks)), looks


def test_the_comparisons_show_each_verdict_and_the_looks_their_path():
    from dropoutlab.report.numbers import analysis_to_json
    from dropoutlab.report.sections import LOOKS_TITLE, report_sections

    a, looks = run_until_decided(long_label_study())
    titles = [s.title for s in report_sections(a)]
    assert titles.index("Compared with the baseline") + 1 == titles.index(LOOKS_TITLE)
    compared = next(s for s in report_sections(a) if s.title == "Compared with the baseline")
    main, details = (frame for _, frame in compared.tables)
    verdicts = a.decision.verdicts()
    assert list(main["verdict"]) == [verdicts[c.config] for c in a.comparisons]
    assert {"better", "worse"} <= set(main["verdict"])
    assert list(format_table(main).columns) == [
        "configuration", "verdict", "difference (pp) [simultaneous 95% CI]", "Holm p", "significant (Holm)",
        "seeds needed",
    ]  # fmt: skip
    assert details.attrs["details"] and "unadjusted p" in details
    section = next(s for s in report_sections(a) if s.title == LOOKS_TITLE)
    ((caption, table),) = section.tables
    assert list(table["look"]) == [look["look"] for look in looks]
    assert list(table["seeds per configuration"]) == [look["seeds"] for look in looks]
    for row, look in zip(table.to_dict("records"), looks, strict=True):
        counted = [c["verdict"] for c in look["comparisons"]]
        assert [row[v] for v in ("better", "worse", "equivalent", "undecided")] == [
            counted.count(v) for v in ("better", "worse", "equivalent", "undecided")
        ]
    planned = 6 * (int(long_label_study()["seed"].max()) + 1)
    assert f"Runs spent: {looks[-1]['spent']}, against {planned} for a fixed design" in " ".join(
        section.paragraphs
    )
    data = analysis_to_json(a)  # the JSON keeps its keys and gives the looks
    assert [look["look"] for look in data["looks"]] == [look["look"] for look in looks]
    assert data["decision"]["could_be_best"] == list(a.decision.could_be_best)
    assert [c["verdict"] for c in data["comparisons"]] == list(main["verdict"])


def test_the_methods_name_the_device_once():
    from dropoutlab.report.sections import device_text

    assert device_text("cpu: cpu") == "cpu"
    assert device_text("cpu: x86_64") == "cpu (x86_64)"
    assert device_text("cuda: NVIDIA H100 80GB HBM3") == "cuda (NVIDIA H100 80GB HBM3)"
    assert device_text("not recorded") == "not recorded"


# Appended to a copy of the page: open every <details>, then write into the DOM how wide the
# page and each table are against the room they have.
WIDTHS = """<script>
window.addEventListener("load", function () {
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  var wide = [];
  document.querySelectorAll(".table-wrap").forEach(function (t) {
    if (t.scrollWidth > t.clientWidth) { wide.push(t.scrollWidth + " > " + t.clientWidth + ": "
      + t.querySelector("th").textContent); }
  });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
                                    tables: document.querySelectorAll(".table-wrap").length, wide: wide});
  document.body.appendChild(out);
});
</script>"""


def test_chromium_at_1280_px_shows_every_table_without_scrolling_sideways(tmp_path):
    binary = chromium()
    if binary is None:
        skip_or_fail_without_chromium()
    from dropoutlab.report.write import write_analysis

    a, _ = run_until_decided(long_label_study())
    paths = write_analysis(a, tmp_path / "report")
    page = paths["html"].read_text(encoding="utf-8")
    for raw in ("p_adjusted", "effect_size", "on_line", "seeds_needed", "Device: cpu: cpu"):
        assert raw not in page
    shot = tmp_path / "report-1280.png"
    done = run_chromium(
        binary, tmp_path, f"--screenshot={shot}", "--window-size=1280,3000", paths["html"].as_uri()
    )
    assert shot.exists(), f"no screenshot (rc {done.returncode}): {done.stderr[-2000:]}"
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (3000, 1280)
    copy = tmp_path / "widths.html"
    copy.write_text(page.replace("<head>", "<head>\n" + WIDTHS, 1), encoding="utf-8")
    done = run_chromium(binary, tmp_path, "--window-size=1280,3000", "--dump-dom", copy.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe output (rc {done.returncode}): {done.stderr[-2000:]}"
    widths = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&gt;", ">"))
    assert widths["inner"] == 1280 and widths["tables"] >= 6
    assert widths["scroll"] <= widths["inner"], widths  # no horizontal scroll on the page
    assert widths["wide"] == [], widths  # nor inside any table


def test_the_width_probe_sees_a_table_too_wide_for_the_page(tmp_path):
    binary = chromium()
    if binary is None:
        skip_or_fail_without_chromium()
    wide = pd.DataFrame({f"column_{i}": ["x" * 30] for i in range(12)})
    page = render_html("t", [Section("s", tables=[("wide", wide)])]).replace(
        "overflow-wrap: break-word", "white-space: nowrap"
    )
    copy = tmp_path / "wide.html"
    copy.write_text(page.replace("<head>", "<head>\n" + WIDTHS, 1), encoding="utf-8")
    done = run_chromium(binary, tmp_path, "--window-size=1280,3000", "--dump-dom", copy.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    widths = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&gt;", ">"))
    assert len(widths["wide"]) == 1


def test_the_rate_section_says_which_configurations_its_lines_cover():
    from dropoutlab.report.sections import report_sections

    a, _ = run_until_decided(long_label_study())
    rate = next(s for s in report_sections(a) if s.title == "Accuracy against the dropout rate")
    assert (
        "The lines cover only the configurations at dropout.input=0, dropout.hidden2=0, optimizer.weight_decay=0 "
        "(4 of 6). The other 2, at dropout.input=0.2, dropout.hidden2=0.5, optimizer.weight_decay=0; "
        "dropout.input=0.2, dropout.hidden2=0.5, optimizer.weight_decay=0.0001, are the white markers"
    ) in " ".join(rate.paragraphs)
    runs = long_label_study()
    line = run_until_decided(runs[runs["dropout.input"] == 0.0])[0]
    rate = next(s for s in report_sections(line) if s.title == "Accuracy against the dropout rate")
    assert not any("The lines cover" in p for p in rate.paragraphs)  # every configuration is on the line


def test_an_interaction_test_on_part_of_the_grid_says_which_values_it_covers():
    import dataclasses

    from dropoutlab.report.analysis import StudyData, _analyze
    from dropoutlab.report.model import Interaction
    from dropoutlab.report.sections import report_sections

    cells = [(0.0, "standard"), *((r, k) for r in (0.1, 0.3) for k in ("standard", "spatial"))]
    runs = pd.DataFrame([{"config": f"dropout.conv={r},dropout.conv.kind={k}", "seed": s, "status": "completed",
                          "test_acc": 0.9 + 0.01 * s + r / 10, "final_train_acc": 0.95, "dropout.conv": r,
                          "dropout.conv.kind": k} for r, k in cells for s in range(3)])  # fmt: skip
    runs.attrs["params"] = ["dropout.conv", "dropout.conv.kind"]
    a = _analyze(StudyData.from_runs(runs))
    part = Interaction(("dropout.conv", "dropout.conv.kind"), ([0.1, 0.3], ["spatial", "standard"]), 0.5, 1, 7,
                       0.5, 1.0, False, 0.1, True, 12)  # fmt: skip
    a = dataclasses.replace(a, interaction=part, unavailable={})
    grid = next(s for s in report_sections(a) if " x " in s.title)
    assert (
        "The interaction test covers dropout.conv = 0.1 and 0.3 and dropout.conv.kind = spatial and standard, the "
        "values run at every value of the other parameter; not dropout.conv = 0, which the study did not cross "
        "with them."
    ) in grid.paragraphs
    whole = dataclasses.replace(part, levels=([0.0, 0.1, 0.3], ["spatial", "standard"]))
    grid = next(s for s in report_sections(dataclasses.replace(a, interaction=whole)) if " x " in s.title)
    assert not any("covers" in p for p in grid.paragraphs)


@pytest.mark.parametrize("kind", ["baseline", "no regularization", "strata"])
def test_the_table_after_a_run_and_the_report_share_one_naming(kind):
    """``summary.config_labels`` (no analysis, no scipy.stats) gives the names ``Analysis.label`` gives."""
    from dropoutlab.report.analysis import StudyData, _analyze
    from dropoutlab.report.summary import config_labels, summary_table

    runs = long_label_study(seeds=3)
    if kind == "baseline":
        runs = runs[runs["optimizer.weight_decay"] == 0.0]
        runs.attrs["params"] = SLOTS
    if kind == "strata":  # two models, each with and without dropout: no single baseline
        runs = runs[runs["dropout.input"] == 0.0].copy()
        runs["model"] = np.where(runs["dropout.hidden1"].isin([0.0, 0.3]), "mlp", "cnn")
        runs.loc[runs["dropout.hidden1"] == 0.1, "dropout.hidden1"] = 0.0
        runs["config"] = runs["model"] + "," + runs["dropout.hidden1"].astype(str)
        runs.attrs["params"] = ["model", "dropout.hidden1"]
    a = _analyze(StudyData.from_runs(runs))
    names = config_labels(runs)
    assert names == a.labels
    expected = {"baseline": "no dropout", "no regularization": "no regularization", "strata": None}[kind]
    assert (a.baseline_name == expected) if expected else (a.baseline is None and a.strata)
    table = summary_table(runs)
    assert all(name in table for name in names.values())


def grid_study(levels: dict[str, list], seeds: int = 2) -> pd.DataFrame:
    """A runs table of every combination of ``levels`` (dropout rates), ``seeds`` seeds each,
    accuracy falling with the rates, and its history of 2 epochs."""
    import itertools

    gen = np.random.default_rng(5)
    rows, history = [], []
    for values in itertools.product(*levels.values()):
        cell = dict(zip(levels, values, strict=True))
        config = ",".join(f"{k}={v}" for k, v in cell.items())
        for seed in range(seeds):
            acc = 0.9 - 0.1 * sum(values) + gen.normal(0, 0.01)
            rows.append({"id": f"{config}-{seed}", "config": config, "seed": seed, "status": "completed",
                         "test_acc": acc, "test_loss": 1 - acc, "final_train_acc": acc + 0.03,
                         "final_val_acc": acc, **cell})  # fmt: skip
            history += [{"run_id": f"{config}-{seed}", "config": config, "seed": seed, "status": "completed",
                         "epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": acc - 0.1 / e,
                         "val_acc": acc - 0.05 / e, **cell} for e in (1, 2)]  # fmt: skip
    runs = pd.DataFrame(rows)
    runs.attrs["params"] = list(levels)
    return runs, pd.DataFrame(history)


def test_a_report_of_many_configurations_stays_small_and_says_what_its_figures_leave_out(tmp_path):
    from dropoutlab.report.analysis import CURVES_BEST, StudyData, _analyze
    from dropoutlab.report.sections import report_sections
    from dropoutlab.report.write import write_analysis

    rates = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    runs, history = grid_study(
        {"dropout.hidden1": rates, "dropout.hidden2": rates, "dropout.input": [0.0, 0.2, 0.4]}
    )
    a = _analyze(StudyData.from_runs(runs, history=history), "many")
    sections = {s.title: s for s in report_sections(a)}
    curves = sections["Learning curves"]
    assert len(curves.figures) == 1 + CURVES_BEST + 1
    assert f"for the {CURVES_BEST} configurations with the highest mean test accuracy and the baseline " \
           f"({CURVES_BEST + 1} of 108;" in curves.paragraphs[0]  # fmt: skip
    rate = " ".join(sections["Accuracy against the dropout rate"].paragraphs)
    assert (
        "The other 102, at 17 other settings of dropout.hidden2 and dropout.input, are the grey dots" in rate
    )
    assert [f[3] for f in sections["Effect of each parameter, averaged over the others"].figures] == [
        "factors-test-acc"
    ]
    paths = write_analysis(a, tmp_path)
    pngs = [p for p in paths.values() if p.suffix == ".png"]
    assert len(pngs) == 2 + 1 + 1 + CURVES_BEST + 1  # rate (2), factors, comparison, curves
    assert paths["html"].stat().st_size < 2_000_000
