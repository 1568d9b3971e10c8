"""Build misrep's notebooks as a static HTML site with nbconvert: one page per notebook, one per results folder, and
an index in the layout order (00, 01, 01a, 02, ...).

usage: .venv/bin/python tools/docs/build_docs.py [--out _docs] [--no-execute] [--only 00_core ...]

- Library notebooks (every notebook but nbs/3*) are executed into the build folder (never into nbs/), because they are
  committed without outputs; `#| slow` and `#| eval: false` cells are not run. Executed copies are cached in
  OUT/.cache and reused while the notebook and misrep/*.py are unchanged. `--no-execute` renders them as stored.
- Experiment notebooks (nbs/3*) are never run here: each executed copy found under results/<name>/ (papermill's
  output, matched by its recorded input path or by file name) gets a page; without one, the source notebook does.
- Each results/<name>/ folder gets a page with its README, tables (Markdown rendered), figures and raw files;
  results/*.md files get a page each. The index links every notebook page, every results page and every figure.
- Local links (href/src) are resolved against the source file's folder: a link to a notebook in nbs/ becomes a link
  to its page, a link to a results folder to that folder's page, and any other file of the repository is copied into
  the site at the same relative path, so the site can be moved or served as it is.
"""
import argparse
import hashlib
import html
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import quote, unquote

ROOT = Path(__file__).resolve().parents[2]
LAYOUT_RE = re.compile(r"^(\d+)([a-z]*)_")
EXPERIMENT_RE = re.compile(r"^3\d")
SKIP_DIRECTIVE_RE = re.compile(r"^\s*#\|\s*(slow\b|eval\s*:\s*false\b)", re.M)
URL_ATTR_RE = re.compile(r"""\b(href|src)=(["'])(.*?)\2""", re.S)
SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
FIGURE_EXT = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
COPY_EXT = FIGURE_EXT | {".csv", ".json", ".md", ".txt", ".pdf", ".html", ".tsv"}


def layout_key(name):
    "Sort key for the layout order: number, then letter suffix ('01' < '01a' < '02'), then the name."
    m = LAYOUT_RE.match(name)
    return (0, int(m.group(1)), m.group(2), name) if m else (1, 0, "", name)


def is_experiment(name):
    "Experiment notebooks are nbs/3*."
    return bool(EXPERIMENT_RE.match(name))


def notebook_info(path):
    "The notebook's H1, its one-line `>` summary (Markdown) and its `#| default_exp` module, from its first cells."
    import nbformat
    nb = nbformat.read(str(path), as_version=4)
    title, summary, module = "", "", ""
    for cell in nb.cells:
        src = cell.source
        if cell.cell_type == "code" and not module:
            m = re.search(r"^\s*#\|\s*default_exp\s+(\S+)", src, re.M)
            module = m.group(1) if m else module
        if cell.cell_type != "markdown" or title:
            continue
        lines = src.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("# "):
                title = line[2:].strip()
                quote_lines = []
                for rest in lines[i + 1:]:
                    if not rest.strip():
                        if quote_lines:
                            break
                        continue
                    if not quote_lines and not rest.lstrip().startswith(">"):
                        break
                    quote_lines.append(re.sub(r"^\s*>\s?", "", rest).strip())  # lazy continuation lines too
                summary = " ".join(quote_lines)
                break
    return dict(title=title or path.stem, summary=summary, module=module)


def executed_copies(results_dir, nbs_dir):
    "{source notebook name: [executed copies]} for every .ipynb under results/ (papermill's input_path, else its name)."
    import nbformat
    found = {}
    if not results_dir.is_dir():
        return found
    for p in sorted(results_dir.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in p.parts:
            continue
        try:
            nb = nbformat.read(str(p), as_version=4)
        except Exception as e:  # an unreadable file: say so and go on
            print(f"docs: skipped {p}: not a readable notebook ({e})", file=sys.stderr)
            continue
        src = Path(str(nb.metadata.get("papermill", {}).get("input_path") or "")).name
        if not (nbs_dir / src).is_file():
            src = p.name
        found.setdefault(src, []).append(p)
    return found


def markdown_html(text):
    "Markdown (with $math$ and tables) to HTML, as nbconvert renders notebook cells."
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    return markdown2html_mistune(text)


def inline_markdown(text):
    "One line of Markdown to HTML without the enclosing paragraph."
    out = markdown_html(text).strip()
    return re.sub(r"^<p>(.*)</p>$", r"\1", out, flags=re.S)


class Site:
    "Where every source file of the repository lands in the site, and the link rewriting that follows from it."

    def __init__(self, root, out):
        self.root, self.out = Path(root).resolve(), Path(out).resolve()
        self.pages = {}      # repo-relative source path (str) -> site-relative page path (str)
        self.built = set()   # site-relative pages written in this build

    def page_for(self, rel):
        "Site page of a repository path (notebook, results folder or Markdown file), or None."
        return self.pages.get(str(rel).rstrip("/"))

    def rewrite(self, text, src_dirs, page):
        "Rewrite local href/src in `text` (HTML of site page `page`), resolving them against the first of `src_dirs`."
        page_dir = (self.out / page).parent

        def fix(m):
            attr, q, url = m.group(1), m.group(2), html.unescape(m.group(3))
            if not url or url.startswith(("#", "//")) or SCHEME_RE.match(url):
                return m.group(0)
            path, sep, frag = url.partition("#")
            path = path.split("?")[0]
            for d in src_dirs:
                target = (d / unquote(path)).resolve()
                try:
                    rel = target.relative_to(self.root)
                except ValueError:
                    continue
                dest = self.page_for(rel.as_posix())
                if dest is None and target.is_file() and self.out not in target.parents:
                    dest = rel.as_posix()
                    (self.out / dest).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(target, self.out / dest)
                if dest is not None:
                    new = os.path.relpath(self.out / dest, page_dir).replace(os.sep, "/")
                    return f"{attr}={q}{html.escape(quote(new), quote=True)}{sep}{frag}{q}"
            return m.group(0)  # not found anywhere: left as is (the link check reports it)

        return URL_ATTR_RE.sub(fix, text)

    def write(self, page, text):
        (self.out / page).parent.mkdir(parents=True, exist_ok=True)
        (self.out / page).write_text(text, encoding="utf-8")
        self.built.add(page)


def cache_key(nb_path, lib_dir):
    "Hash of a notebook and of every misrep/*.py: an executed copy is reused only while both are unchanged."
    h = hashlib.sha256(Path(nb_path).read_bytes())
    for f in sorted(Path(lib_dir).glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def execute_notebook(nb_path, cache_dir, lib_dir, timeout=1800):
    "The notebook executed in its own folder (slow cells not run), from the cache when still valid; and the seconds."
    import nbformat
    from nbclient import NotebookClient
    key = cache_key(nb_path, lib_dir)
    cached = Path(cache_dir) / Path(nb_path).name
    if cached.is_file():
        nb = nbformat.read(str(cached), as_version=4)
        if nb.metadata.get("misrep_docs", {}).get("key") == key:
            return nb, 0.0
    nb = nbformat.read(str(nb_path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and SKIP_DIRECTIVE_RE.search(cell.source):
            cell.metadata.setdefault("tags", []).append("skip-execution")
    t0 = time.time()
    cached.parent.mkdir(parents=True, exist_ok=True)
    with open(cached.with_suffix(".kernel.log"), "w") as kernel_log:  # the kernel process's own warnings
        NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(Path(nb_path).parent)}}).execute(stderr=kernel_log)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "skip-execution" in tags:
            tags.remove("skip-execution")
    nb.metadata["misrep_docs"] = {"key": key}
    nbformat.write(nb, str(cached))
    return nb, time.time() - t0


def errors_in(nb):
    "Names of the errors raised by the notebook's cells."
    return [o.get("ename", "?") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


def nav_bar(page, note=""):
    "A line on top of every page: back to the index, and where the page comes from."
    back = os.path.relpath("index.html", os.path.dirname(page) or ".").replace(os.sep, "/")
    return (f'<div class="misrep-nav" style="font:14px sans-serif;padding:6px 12px;background:#f3f3f3;'
            f'border-bottom:1px solid #ddd"><a href="{back}">misrep notebooks</a>'
            f'{" &middot; " + note if note else ""}</div>')


def render_notebook(site, nb, page, src_dirs, title, note):
    "Convert a notebook to a page of the site (nbconvert's lab template), local links rewritten."
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav_bar(page, note), body, count=1)
    site.write(page, site.rewrite(body, src_dirs, page))


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script>window.MathJax = {{tex: {{inlineMath: [['$', '$'], ['\\\\(', '\\\\)']]}}}};</script>
<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js" async></script>
<style>
body {{ font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 0 auto;
       padding: 0 16px 40px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }} td, th {{ border: 1px solid #ddd; padding: 4px 8px;
       vertical-align: top; text-align: left; }} th {{ background: #f6f6f6; }}
code {{ background: #f3f3f3; padding: 0 3px; }} pre {{ background: #f6f6f6; padding: 8px; overflow: auto; }}
.thumbs a {{ display: inline-block; margin: 4px; text-align: center; font-size: 12px; }}
.thumbs img {{ max-width: 240px; max-height: 180px; border: 1px solid #ddd; display: block; }}
figure img {{ max-width: 100%; border: 1px solid #ddd; }} .muted {{ color: #777; }}
</style></head><body>
{nav}
{body}
</body></html>
"""


def results_folders(results_dir):
    "Every folder directly under results/, sorted."
    return sorted(p for p in results_dir.iterdir() if p.is_dir()) if results_dir.is_dir() else []


def folder_files(folder):
    "Files of a results folder worth showing (no notebooks, no checkpoints), sorted."
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in COPY_EXT
                  and "checkpoints" not in p.relative_to(folder).parts)


def render_results_folder(site, folder, notebooks):
    "The page of one results folder: README, notebooks executed there, tables, figures, every other file."
    rel = folder.relative_to(site.root).as_posix()
    page = site.page_for(rel)
    files = folder_files(folder)
    parts = [f"<h1>{html.escape(rel)}/</h1>"]
    links = [f'<a href="{quote(os.path.relpath(site.root / k, folder))}">{html.escape(Path(k).name)}</a>'
             for k in notebooks]  # links to the sources: the rewrite maps them to their pages
    if links:
        parts.append("<p>Executed notebooks: " + ", ".join(links) + "</p>")
    for md in [p for p in files if p.suffix.lower() == ".md" and p.parent == folder]:
        parts.append(f'<h2 id="{html.escape(md.stem)}">{html.escape(md.name)}</h2>' + markdown_html(md.read_text()))
    tables = [p for p in files if p.suffix.lower() == ".md" and p.parent != folder]
    if tables:
        parts.append("<h2>Tables</h2>")
        for t in tables:
            trel = t.relative_to(folder).as_posix()
            csv = t.with_suffix(".csv")
            raw = f' (<a href="{quote(csv.relative_to(folder).as_posix())}">csv</a>)' if csv.is_file() else ""
            parts.append(f'<h3 id="{html.escape(t.stem)}">{html.escape(trel)}{raw}</h3>' + markdown_html(t.read_text()))
    figures = [p for p in files if p.suffix.lower() in FIGURE_EXT]
    if figures:
        parts.append("<h2>Figures</h2>")
        for f in figures:
            frel = quote(f.relative_to(folder).as_posix())
            parts.append(f'<figure id="{html.escape(f.stem)}"><a href="{frel}"><img src="{frel}" alt="{html.escape(f.name)}">'
                         f'</a><figcaption>{html.escape(f.relative_to(folder).as_posix())}</figcaption></figure>')
    cfg = folder / "config.json"
    if cfg.is_file():
        parts.append("<h2>config.json</h2><pre>" + html.escape(cfg.read_text()) + "</pre>")
    parts.append("<h2>Files</h2><ul>" + "".join(
        f'<li><a href="{quote(p.relative_to(folder).as_posix())}">{html.escape(p.relative_to(folder).as_posix())}</a></li>'
        for p in files) + "</ul>")
    for p in files:  # the raw files next to the page, at the same relative paths
        dest = site.out / rel / p.relative_to(folder)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dest)
    body = "\n".join(parts)
    site.write(page, site.rewrite(PAGE.format(title=html.escape(rel), nav=nav_bar(page), body=body),
                                  [folder], page))
    return figures, tables


def build(root=ROOT, out=None, execute=True, only=None, log=print):
    """Build the site into `out` (default ROOT/_docs); `only`: notebook stems whose pages are built (all if None).
    Returns {"pages": {source: page}, "built": set of pages written, "skipped": pages planned but not built}."""
    root = Path(root).resolve()
    out = Path(out).resolve() if out else root / "_docs"
    nbs_dir, results_dir, lib_dir = root / "nbs", root / "results", root / "misrep"
    notebooks = sorted(nbs_dir.glob("*.ipynb"), key=lambda p: layout_key(p.name))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks in {nbs_dir}: expected nbs/NN_name.ipynb files")
    unknown = set(only or ()) - {p.stem for p in notebooks}
    if unknown:
        raise ValueError(f"--only: no notebook named {sorted(unknown)} in {nbs_dir}; "
                         f"expected stems such as {notebooks[0].stem}")
    out.mkdir(parents=True, exist_ok=True)
    site = Site(root, out)
    execs = executed_copies(results_dir, nbs_dir)
    folders = results_folders(results_dir)
    top_md = sorted(results_dir.glob("*.md")) if results_dir.is_dir() else []

    # Plan every page first, so that links between pages resolve whatever the build order.
    for nb in notebooks:
        copies = execs.get(nb.name, []) if is_experiment(nb.name) else []
        for c in copies:
            site.pages[c.relative_to(root).as_posix()] = c.relative_to(root).with_suffix(".html").as_posix()
        if not copies:
            site.pages[nb.relative_to(root).as_posix()] = nb.stem + ".html"
        else:  # links to the source notebook lead to its first executed copy
            site.pages[nb.relative_to(root).as_posix()] = site.pages[copies[0].relative_to(root).as_posix()]
    for c in [c for cs in execs.values() for c in cs]:  # executed notebooks whose source is not in nbs/
        site.pages.setdefault(c.relative_to(root).as_posix(), c.relative_to(root).with_suffix(".html").as_posix())
    for f in folders:
        site.pages[f.relative_to(root).as_posix()] = f.relative_to(root).as_posix() + "/index.html"
    for md in top_md:
        site.pages[md.relative_to(root).as_posix()] = md.relative_to(root).with_suffix(".html").as_posix()

    import nbformat
    infos, timings, failed = {}, {}, {}
    for nb_path in notebooks:
        info = infos[nb_path.name] = notebook_info(nb_path)
        if only is not None and nb_path.stem not in only:
            continue
        copies = execs.get(nb_path.name, []) if is_experiment(nb_path.name) else []
        if copies:
            for c in copies:
                t0 = time.time()
                run = c.parent.relative_to(root).as_posix()
                render_notebook(site, nbformat.read(str(c), as_version=4), site.pages[c.relative_to(root).as_posix()],
                                [nbs_dir, c.parent], f"{info['title']} ({run})",
                                f"{html.escape(nb_path.name)} as executed in {html.escape(run)}/")
                timings[c.relative_to(root).as_posix()] = time.time() - t0
            continue
        t0 = time.time()
        nb = nbformat.read(str(nb_path), as_version=4)
        note = f"nbs/{html.escape(nb_path.name)}, as committed (not executed: no executed copy under results/)" \
            if is_experiment(nb_path.name) else f"nbs/{html.escape(nb_path.name)}, outputs as stored"
        if execute and not is_experiment(nb_path.name):
            log(f"docs: executing {nb_path.name} ...")
            nb, secs = execute_notebook(nb_path, out / ".cache", lib_dir)
            note = f"nbs/{html.escape(nb_path.name)}, executed for this page" + \
                (" (cached)" if secs == 0 else f" in {secs:.0f} s") + " (#| slow cells not run)"
            if errors_in(nb):
                failed[nb_path.name] = errors_in(nb)
                note += f'; <b style="color:#b00">errors while executing: {html.escape(", ".join(errors_in(nb)))}</b>'
        render_notebook(site, nb, site.pages[nb_path.relative_to(root).as_posix()], [nbs_dir], info["title"], note)
        timings[nb_path.name] = time.time() - t0
        log(f"docs: {nb_path.name} -> {site.pages[nb_path.relative_to(root).as_posix()]} ({timings[nb_path.name]:.1f} s)")
    if only is None:  # executed notebooks under results/ whose source is gone from nbs/
        for c in [c for src, cs in execs.items() if not (nbs_dir / src).is_file() for c in cs]:
            render_notebook(site, nbformat.read(str(c), as_version=4), site.pages[c.relative_to(root).as_posix()],
                            [c.parent], c.stem, f"{html.escape(c.relative_to(root).as_posix())} (its source is not in nbs/)")

    # Results pages (cheap: always built, so the index's figure links resolve).
    by_folder = {}
    for src, cs in execs.items():
        for c in cs:
            by_folder.setdefault(c.parent.relative_to(results_dir).parts[0], []).append(c.relative_to(root).as_posix())
    shown = {}
    for f in folders:
        shown[f.name] = render_results_folder(site, f, by_folder.get(f.name, []))
    for md in top_md:
        page = site.pages[md.relative_to(root).as_posix()]
        site.write(page, site.rewrite(PAGE.format(title=html.escape(md.name), nav=nav_bar(page),
                                                  body=markdown_html(md.read_text())), [md.parent], page))

    # The index.
    rows = []
    for nb_path in notebooks:
        info = infos[nb_path.name]
        key = nb_path.relative_to(root).as_posix()
        if is_experiment(nb_path.name):
            copies = execs.get(nb_path.name, [])
            what = ("executed: " + ", ".join(
                f'<a href="{html.escape(site.pages[c.relative_to(root).as_posix()])}">'
                f'{html.escape(c.parent.relative_to(results_dir).as_posix())}</a>' for c in copies)
                    if copies else '<span class="muted">experiment; no executed copy under results/ yet</span>')
        else:
            what = f"<code>misrep.{html.escape(info['module'])}</code>" if info["module"] else ""
        rows.append(f'<tr><td><a href="{html.escape(site.pages[key])}">{html.escape(nb_path.stem)}</a></td>'
                    f'<td><b>{html.escape(info["title"])}</b><br>{inline_markdown(info["summary"])}</td>'
                    f"<td>{what}</td></tr>")
    res = []
    for f in folders:
        figures, tables = shown[f.name]
        page = site.pages[f.relative_to(root).as_posix()]
        base = f.relative_to(root).as_posix()
        nbs_here = by_folder.get(f.name, [])
        line = [f'<h3><a href="{html.escape(page)}">{html.escape(f.name)}/</a></h3>']
        if nbs_here:
            line.append("<p>Executed: " + ", ".join(f'<a href="{html.escape(site.pages[k])}">{html.escape(Path(k).name)}</a>'
                                                     for k in nbs_here) + "</p>")
        if tables:
            line.append("<p>Tables: " + ", ".join(
                f'<a href="{html.escape(page)}#{html.escape(t.stem)}">{html.escape(t.relative_to(f).as_posix())}</a>'
                for t in tables) + "</p>")
        if figures:
            line.append('<div class="thumbs">' + "".join(
                f'<a href="{quote(base + "/" + g.relative_to(f).as_posix())}"><img src="{quote(base + "/" + g.relative_to(f).as_posix())}" '
                f'alt="{html.escape(g.name)}" loading="lazy">{html.escape(g.relative_to(f).as_posix())}</a>'
                for g in figures) + "</div>")
        res.append("\n".join(line))
    for md in top_md:
        res.append(f'<h3><a href="{html.escape(site.pages[md.relative_to(root).as_posix()])}">{html.escape(md.name)}</a></h3>')
    body = ("<h1>misrep notebooks</h1>\n<p>Every notebook of <code>nbs/</code> in the layout order: library notebooks "
            "(<code>misrep.*</code> modules) executed for these pages, experiment notebooks as executed in "
            "<code>results/</code> where a copy exists. Built by <code>make docs</code> with nbconvert.</p>\n"
            "<table><tr><th>notebook</th><th>what</th><th>module / runs</th></tr>\n" + "\n".join(rows) + "</table>\n"
            "<h2>Results</h2>\n<p>Each folder of <code>results/</code>: its page (README, tables, figures, config), "
            "its tables and its figures.</p>\n" + "\n".join(res))
    site.write("index.html", PAGE.format(title="misrep notebooks", nav="", body=body))
    planned = set(site.pages.values()) | {"index.html"}
    return {"pages": dict(site.pages), "built": set(site.built), "skipped": planned - site.built,
            "timings": timings, "failed": failed, "out": out}


def main(argv=None):
    p = argparse.ArgumentParser(description="Build static HTML of every notebook (nbconvert) and an index page.")
    p.add_argument("--out", default=str(ROOT / "_docs"), help="build folder (default _docs/, git-ignored)")
    p.add_argument("--no-execute", action="store_true", help="render library notebooks as stored, without running them")
    p.add_argument("--only", nargs="+", metavar="STEM", help="build only these notebooks' pages (and the index)")
    a = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # kernels: one torch thread (shared CPUs)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures inline, whatever make exported
    t0 = time.time()
    try:
        r = build(ROOT, a.out, execute=not a.no_execute, only=a.only)
    except (FileNotFoundError, ValueError) as e:
        print(f"docs: {e}", file=sys.stderr)
        return 2
    print(f"docs: {len(r['built'])} pages in {r['out']} ({time.time() - t0:.0f} s); open {r['out'] / 'index.html'}")
    for name, errs in r["failed"].items():
        print(f"docs: WARNING {name} raised {', '.join(errs)} while executing (shown on its page)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
