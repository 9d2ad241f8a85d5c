"""The report writers: one self-contained HTML file and a Markdown file with PNGs beside it.

A report is a title, an ordered list of findings (plain-text sentences, shown first), an
optional list of exploratory findings and a list of ``Section``s, each with paragraphs,
figures and tables. The pages are jinja2 templates (``templates/report.html.j2`` with
autoescaping, ``templates/report.md.j2`` with every value Markdown-escaped unless it is
markup made here). ``render_html`` gives one
HTML page that needs nothing else: images inlined as base64 PNG data URIs, inline CSS, no
script, no external address, readable on a phone (viewport meta, a max-width column,
images scaled down, wide tables scrolling sideways). ``render_markdown`` gives the same
content with ``![alt](file.png)`` links, and ``write_report`` writes both plus the PNGs.

Tables are pandas DataFrames with the store's units; ``format_table`` shows accuracies
as percent and accuracy differences as percentage points (see its docstring for how
columns are recognised). All text from the caller is escaped: in HTML by jinja2's
autoescaping, in Markdown by ``md_escape`` (so that a study named ``![t](http://x/y.png)``
shows as text, not as an image).
"""

from __future__ import annotations

import base64
import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup
from matplotlib.figure import Figure

from dropoutlab.report.plots import png_bytes
from dropoutlab.report.text import slug

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NA = "\u2013"  # shown for missing values
#: Tables longer than this are folded in a ``<details>`` element in the HTML.
FOLD_ROWS = 25

Image = Figure | bytes


@dataclass(frozen=True, eq=False)
class Section:
    """One section of a report.

    ``paragraphs``: plain-text paragraphs (escaped, not markup). ``figures``: tuples
    ``(caption, image, alt)`` or ``(caption, image, alt, name)`` where ``image`` is a
    matplotlib ``Figure`` or PNG bytes, ``alt`` describes the picture for people who cannot
    see it and ``name`` is the PNG's file stem (default: the caption as a slug). ``tables``:
    DataFrames, or ``(caption, DataFrame)`` tuples, formatted by ``format_table``.
    Sequences are stored as tuples.
    """

    title: str
    paragraphs: Sequence[str] = ()
    figures: Sequence[tuple] = ()
    tables: Sequence[pd.DataFrame | tuple[str, pd.DataFrame]] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "paragraphs", tuple(str(p) for p in self.paragraphs))
        figures = []
        for entry in self.figures:
            if not (isinstance(entry, tuple) and len(entry) in (3, 4)):
                raise TypeError(f"a figure is (caption, image, alt[, name]), got {entry!r}")
            caption, image, alt, name = entry if len(entry) == 4 else (*entry, "")
            if not isinstance(image, Figure | bytes | bytearray | memoryview):
                raise TypeError(f"figure {caption!r}: expected a matplotlib Figure or PNG bytes")
            if not isinstance(image, Figure) and not bytes(image[:8]) == PNG_SIGNATURE:
                raise ValueError(f"figure {caption!r}: the bytes are not a PNG")
            figures.append((str(caption), image, str(alt), str(name or "")))
        object.__setattr__(self, "figures", tuple(figures))
        tables = []
        for entry in self.tables:
            caption, frame = entry if isinstance(entry, tuple) else ("", entry)
            if not isinstance(frame, pd.DataFrame):
                raise TypeError(f"a table is a DataFrame or (caption, DataFrame), got {entry!r}")
            tables.append((str(caption), frame))
        object.__setattr__(self, "tables", tuple(tables))


# ----------------------------------------------------------------------------------------
# Tables


_ACC = re.compile(r"(^|[_\s])acc(uracy)?([_\s]|$)")
_KINDS = ("pct", "pp", "p", "int", "loss", "float", "bool", "text")
_PVALUE = ("p_value", "p_adjusted", "p")


def _column_kind(frame: pd.DataFrame, column) -> str:
    """``pct``, ``pp``, ``p``, ``int``, ``loss``, ``float``, ``bool`` or ``text``."""
    name = str(column).lower()
    values = frame[column]
    declared = (frame.attrs.get("units") or {}).get(column)
    if declared is not None:
        if declared not in _KINDS:
            raise ValueError(f"units[{column!r}] = {declared!r}; choose from {', '.join(_KINDS)}")
        return declared
    if pd.api.types.is_bool_dtype(values):
        return "bool"
    if not pd.api.types.is_numeric_dtype(values):
        return "text"
    if name in _PVALUE:
        return "p"
    if _ACC.search(name):
        return "pp" if "gap" in name or "diff" in name else "pct"
    # compare() tables: the difference columns are in the units of the metric column.
    if name in ("diff", "ci_low", "ci_high") and "metric" in frame:
        metrics = frame["metric"].dropna().astype(str)
        if len(metrics) and metrics.map(lambda m: bool(_ACC.search(m))).all():
            return "pp"
    if pd.api.types.is_integer_dtype(values):
        return "int"
    finite = values.dropna().to_numpy(dtype=float)
    if finite.size and np.all(np.isfinite(finite)) and np.all(np.mod(finite, 1) == 0):
        return "int"
    if "loss" in name:
        return "loss"
    return "float"


def _format_value(value, kind: str) -> str:
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return NA
    if kind == "bool":
        return "yes" if bool(value) else "no"
    if kind == "text":
        return str(value)
    x = float(value)
    if math.isinf(x):
        return "\u221e" if x > 0 else "\u2212\u221e"
    if kind == "pct":
        return f"{100 * x:.2f}"
    if kind == "pp":
        return f"{100 * x:+.2f}".replace("-", "\u2212")
    if kind == "p":
        return "<0.001" if x < 0.001 else f"{x:.3f}"
    if kind == "int":
        return f"{int(x)}"
    if kind == "loss":
        return f"{x:.4f}"
    return f"{x:.4g}"


_UNITS = {"pct": " (%)", "pp": " (pp)"}

#: How a table names the store's columns; other names lose their underscores and say
#: "accuracy" for "acc" (``test_acc_mean`` -> ``test accuracy mean``).
HEADERS = {
    "config": "configuration", "n": "seeds", "p_value": "p", "p_adjusted": "Holm p",
    "significant": "significant (Holm)", "effect_size": "effect size", "seeds_needed": "seeds needed",
    "on_line": "on the rate line", "diff": "difference", "d_z": "d_z", "rate_mean": "rate",
}  # fmt: skip
_NBSP = "\u00a0"


def header(column) -> str:
    """The readable header of a column named ``column`` (see ``HEADERS``)."""
    name = str(column)
    if name in HEADERS:
        return HEADERS[name]
    words = re.sub(r"(?<=[a-z0-9])_(?=[a-z0-9])", " ", name)
    return re.sub(r"\bacc\b", "accuracy", words)


def _interval_columns(frame: pd.DataFrame) -> dict:
    """``{estimate column: (low column, high column)}`` for estimates with CI columns.

    ``X_mean`` or ``X`` with ``X_ci_low``/``X_ci_high`` (or ``X ci_low``/``X ci_high``),
    and ``diff`` with ``ci_low``/``ci_high`` (a ``compare`` table).
    """
    names = {str(c): c for c in frame.columns}
    pairs = {}
    for name, column in names.items():
        bases = [name[: -len(suffix)] for suffix in ("_mean", " mean") if name.endswith(suffix)]
        candidates = [(f"{b}{sep}ci_low", f"{b}{sep}ci_high") for b in [*bases, name] for sep in "_ "]
        if name == "diff":
            candidates.append(("ci_low", "ci_high"))
        for low, high in candidates:
            if low in names and high in names and low != name:
                pairs[column] = (names[low], names[high])
                break
    return pairs


def _formatted(frame: pd.DataFrame, merge_ci: bool) -> list[tuple[str, list[str], bool]]:
    """``(header, cells, numeric)`` per displayed column."""
    intervals = _interval_columns(frame) if merge_ci else {}
    merged = {c for pair in intervals.values() for c in pair}
    ci_names = frame.attrs.get("ci") or {}
    out = []
    for column in frame.columns:
        if column in merged:
            continue
        kind = _column_kind(frame, column)
        numeric = kind not in ("text", "bool")
        if column in intervals:
            kind = "float" if kind == "int" else kind
            low, high = intervals[column]
            name = re.sub(r"[_ ]mean$", "", str(column))
            mean = " mean" if name != str(column) else ""
            title = f"{header(name)}{_UNITS.get(kind, '')}{mean} [{ci_names.get(column, 'CI')}]"
            # The interval keeps to one line (no-break spaces); a narrow column breaks before it.
            cells = [
                _format_value(m, kind)
                if _missing(lo) or _missing(hi)
                else f"{_format_value(m, kind)} [{_format_value(lo, kind)},{_NBSP}{_format_value(hi, kind)}]"
                for m, lo, hi in zip(frame[column], frame[low], frame[high], strict=True)
            ]
        else:
            title = f"{header(column)}{_UNITS.get(kind, '')}"
            cells = [_format_value(v, kind) for v in frame[column].tolist()]
        out.append((title, cells, numeric))
    return out


def _missing(value) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def format_table(frame: pd.DataFrame, merge_ci: bool = True) -> pd.DataFrame:
    """``frame`` as strings for display (index dropped; put it in a column to keep it).

    Columns are recognised by name and dtype: names with an ``acc`` word (``test_acc``,
    ``val_acc_mean``, ``final_train_acc``) are accuracy fractions, shown in percent with
    two decimals and ``(%)`` in the header; those that also say ``gap`` or ``diff``, and the
    ``diff, ci_low, ci_high`` columns of a ``compare`` table on an accuracy metric, are
    differences shown in signed percentage points ``(pp)``. ``p_value``/``p_adjusted``
    get three decimals (``<0.001`` below), whole numbers no decimals, losses four decimals,
    other floats four significant digits, booleans yes/no, missing values an en dash.

    Words may be separated by ``_`` or spaces (``"test acc"``, ``"gap acc (train - test)"``).
    A column the names do not describe can be declared in ``frame.attrs["units"]``, a dict
    ``{column: kind}`` with kind one of ``pct, pp, p, int, loss, float, bool, text`` (e.g.
    ``{"diff": "pp"}`` for a ``compare`` table without its ``metric`` column).

    With ``merge_ci`` each ``X_mean`` (or ``X``) with ``X_ci_low`` and ``X_ci_high`` (and
    ``diff`` with ``ci_low``, ``ci_high``) becomes one column ``"X (%) mean [CI]"`` reading
    ``"90.25 [89.12, 91.38]"`` (a no-break space inside the brackets, so a narrow column
    breaks before the interval only), which keeps tables narrow enough for a phone;
    ``frame.attrs["ci"]`` may name an interval (``{"diff": "simultaneous 95% CI"}``).

    Headers are readable words (``header``): ``config`` is "configuration", ``p_adjusted``
    "Holm p", underscores become spaces and ``acc`` "accuracy".
    """
    columns = _formatted(frame, merge_ci)
    return pd.DataFrame({header: cells for header, cells, _ in columns}, columns=[h for h, _, _ in columns])


# ----------------------------------------------------------------------------------------
# Figures: file names and bytes


def _figure_names(sections: Sequence[Section]) -> list[list[str]]:
    """Unique PNG file names per section and figure: the figure's name, else its caption's slug.

    A name used twice gets ``-2``, ``-3``... in order, so the names are stable.
    """
    seen: set[str] = set()
    names = []
    for section in sections:
        mine = []
        for k, (caption, _, _, name) in enumerate(section.figures, start=1):
            stem = slug(name or caption, f"figure-{k}")
            file, n = f"{stem}.png", 2
            while file in seen:
                file, n = f"{stem}-{n}.png", n + 1
            seen.add(file)
            mine.append(file)
        names.append(mine)
    return names


def _to_png(image: Image, dpi: int) -> bytes:
    return png_bytes(image, dpi) if isinstance(image, Figure) else bytes(image)


def _png_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# ----------------------------------------------------------------------------------------
# Templates

# The pages, and the CSS the HTML page inlines (report.css.j2)
_TEMPLATES = Path(__file__).resolve().parent / "templates"

# Characters that make Markdown markup: links and images ([, ]), emphasis (*, _), code (`),
# tables (|), escapes (\\); a < that could open an HTML tag or an autolink, an & that could
# start an entity, and a # or > that would open a heading or a quote at the start of a line.
# Each gets a backslash, CommonMark's escape, so "p < 0.001" stays as it reads.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|]|<(?=[A-Za-z/!?])|&(?=#?\w+;)|^[#>])")


def md_escape(text) -> str:
    """Plain text made safe for Markdown, on one line: no link, image, emphasis or HTML.

    ``![t](http://x/y.png)`` becomes ``!\\[t\\](http://x/y.png)`` and ``<script>``
    ``\\<script>``, which every viewer shows as the text itself; ``Holm p < 0.001`` and
    ``a & b`` stay as they are (Markdown escapes, not HTML entities).
    """
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _md_finalize(value):
    if isinstance(value, Markup):
        return str(value)
    if value is None:
        return ""
    return md_escape(value)


def _environment(kind: str) -> jinja2.Environment:
    if kind == "html":
        return jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=False,
        finalize=_md_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dropoutlab")
    except Exception:  # not installed as a distribution: the footer just omits it
        return ""


# ----------------------------------------------------------------------------------------
# HTML


def _table_html(frame: pd.DataFrame) -> Markup:
    """``frame`` as an HTML table (``format_table``'s cells, escaped): numbers right-aligned,
    text columns (class ``text``) left-aligned and free to wrap, even inside a long name."""
    columns = _formatted(frame, merge_ci=True)
    kinds = ["num" if numeric else "text" for _, _, numeric in columns]

    def cell(text: str, kind: str) -> Markup:
        # a long name (optimizer.weight_decay=0.001) may break after its "=" rather than scroll
        return Markup("=<wbr>").join(str(text).split("=")) if kind == "text" else Markup.escape(text)

    head = Markup("").join(
        Markup('<th class="{}">{}</th>').format(k, h) for (h, _, _), k in zip(columns, kinds, strict=True)
    )
    rows = [
        Markup("<tr>{}</tr>").format(
            Markup("").join(
                Markup('<td class="{}">{}</td>').format(k, cell(c, k))
                for c, k in zip(row, kinds, strict=True)
            )
        )
        for row in zip(*(cells for _, cells, _ in columns), strict=True)
    ]
    return Markup('<table class="data">\n<thead><tr>{}</tr></thead>\n<tbody>\n{}\n</tbody>\n</table>').format(
        head, Markup("\n").join(rows)
    )


def _html_table(caption: str, frame: pd.DataFrame) -> dict:
    body = _table_html(frame)
    details = bool(frame.attrs.get("details"))
    return {"caption": caption, "html": body, "rows": len(frame),
            "fold": details or len(frame) > FOLD_ROWS, "details": details}  # fmt: skip


def _render_html(title: str, sections, findings, images: list[list[bytes]], exploratory=()) -> str:
    views = []
    for i, (section, pngs) in enumerate(zip(sections, images, strict=True), start=1):
        figures = []
        for (caption, _, alt, _), data in zip(section.figures, pngs, strict=True):
            width, height = _png_size(data)
            uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            figures.append({"caption": caption, "alt": alt, "uri": uri, "width": width, "height": height})
        views.append(
            {
                "anchor": f"s{i}-{slug(section.title, 'section')}",
                "title": section.title,
                "paragraphs": section.paragraphs,
                "figures": figures,
                "tables": [_html_table(caption, frame) for caption, frame in section.tables],
            }
        )
    template = _environment("html").get_template("report.html.j2")
    return template.render(
        title=title,
        findings=list(findings),
        exploratory=list(exploratory),
        sections=views,
        version=_version(),
    )


def render_html(
    title: str, sections: Sequence[Section], findings: Sequence[str] = (), dpi: int = 120, exploratory=()
) -> str:
    """The report as one self-contained HTML page (a string).

    Findings come first as a numbered list, then the exploratory findings (if any), then
    each section: paragraphs, figures (PNG at ``dpi``, inlined as ``data:image/png;base64``
    URIs) and tables (``format_table``). All caller text is HTML-escaped; the page has
    inline CSS only, no script and no external address, and fits a phone screen.
    """
    images = [[_to_png(image, dpi) for _, image, _, _ in s.figures] for s in sections]
    return _render_html(title, list(sections), list(findings), images, exploratory)


# ----------------------------------------------------------------------------------------
# Markdown


def pipe_table(frame: pd.DataFrame) -> str:
    """``frame`` (formatted by ``format_table``) as a GitHub-flavoured Markdown pipe table.

    Numeric columns are right-aligned; cells are Markdown-escaped (``|`` too).
    """
    columns = _formatted(frame, merge_ci=True)
    header = "| " + " | ".join(md_escape(h) for h, _, _ in columns) + " |"
    rule = "|" + "|".join("---:" if numeric else ":---" for _, _, numeric in columns) + "|"
    rows = [
        "| " + " | ".join(md_escape(cell) for cell in row) + " |"
        for row in zip(*(cells for _, cells, _ in columns), strict=True)
    ]
    return "\n".join([header, rule, *rows])


def _md_link(image_dir: str | Path, name: str) -> str:
    folder = PurePosixPath(Path(image_dir).as_posix()) if str(image_dir) else PurePosixPath(".")
    return name if str(folder) == "." else str(folder / name)


def render_markdown(
    title: str, sections: Sequence[Section], image_dir: str | Path = ".", findings=(), exploratory=()
) -> str:
    """The report as Markdown, figures linked as ``![alt](<image_dir>/<name>.png)``.

    The PNG names are those ``write_report`` writes; ``image_dir`` is the folder of the
    PNGs relative to the Markdown file (``"."``: beside it). Nothing is rendered or written
    here. Every text is Markdown-escaped (``md_escape``).
    """
    sections = list(sections)
    names = _figure_names(sections)
    views = []
    for section, files in zip(sections, names, strict=True):
        views.append(
            {
                "title": section.title,
                "paragraphs": section.paragraphs,
                "figures": [
                    {"alt": alt, "caption": caption, "link": Markup(_md_link(image_dir, name))}
                    for (caption, _, alt, _), name in zip(section.figures, files, strict=True)
                ],
                "tables": [
                    {"caption": caption, "markdown": Markup(pipe_table(frame))}
                    for caption, frame in section.tables
                ],
            }
        )
    template = _environment("md").get_template("report.md.j2")
    return template.render(
        title=title, findings=list(findings), exploratory=list(exploratory), sections=views
    )


# ----------------------------------------------------------------------------------------
# Writing


def write_report(
    out_dir: str | Path,
    title: str,
    findings: Sequence[str],
    sections: Sequence[Section],
    dpi: int = 120,
    exploratory: Sequence[str] = (),
) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and one PNG per figure into ``out_dir``.

    ``out_dir`` is created if missing; files of the same names are replaced, others left
    alone. Each figure is rendered once (at ``dpi``), written as ``<name>.png`` (see
    ``Section``) and inlined in the HTML. Returns ``{"html": path, "markdown": path}`` plus
    one entry per PNG keyed by its file name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = list(sections)
    findings = list(findings)
    images = [[_to_png(image, dpi) for _, image, _, _ in s.figures] for s in sections]
    paths: dict[str, Path] = {}
    for files, pngs in zip(_figure_names(sections), images, strict=True):
        for name, data in zip(files, pngs, strict=True):
            paths[name] = out / name
            paths[name].write_bytes(data)
    html_path = out / "report.html"
    html_path.write_text(_render_html(title, sections, findings, images, exploratory), encoding="utf-8")
    md_path = out / "report.md"
    md_path.write_text(render_markdown(title, sections, ".", findings, exploratory), encoding="utf-8")
    return {"html": html_path, "markdown": md_path, **paths}
