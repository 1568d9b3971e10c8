"""make docs (tools/docs/build_docs.py): pages and index are built into a temporary folder, every local link on them
resolves, the index links every notebook of nbs/ in the layout order; and `make help` lists every target."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
# The real notebook built in the test: the smallest library notebook.
SMALL = min((p for p in (REPO / "nbs").glob("*.ipynb") if p.name[0] in "012"), key=lambda p: p.stat().st_size).stem


def load_builder():
    spec = importlib.util.spec_from_file_location("build_docs", REPO / "tools" / "docs" / "build_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bd = load_builder()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("href", "src") and v]


def local_links(page):
    "Every href/src of an HTML file that points into the site (no scheme, no bare fragment)."
    p = _Links()
    p.feed(Path(page).read_text(encoding="utf-8"))
    return [u for u in p.links if not (u.startswith("#") or u.startswith("//") or urlsplit(u).scheme)]


def broken_links(out, pages):
    "[(page, link)] for every local link of `pages` (site-relative) whose file does not exist."
    bad = []
    for page in pages:
        for u in local_links(out / page):
            target = (out / page).parent / unquote(urlsplit(u).path)
            if not target.is_file():
                bad.append((page, u))
    return bad


def site_path(page, url):
    "Site-relative path that `url` on site page `page` points to."
    return os.path.normpath(os.path.join(os.path.dirname(page), unquote(urlsplit(url).path))).replace(os.sep, "/")


def h1_of(nb_path):
    "The first H1 of a notebook's markdown cells, read independently of the builder."
    for cell in nbformat.read(str(nb_path), as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()


# --- the real notebooks: one page and the index -------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_site(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    return out, bd.build(REPO, out, execute=False, only=[SMALL], log=lambda *a: None)


def test_real_page_and_index_links_resolve(real_site):
    out, r = real_site
    assert {"index.html", f"{SMALL}.html"} <= r["built"]
    bad = broken_links(out, sorted(r["built"]))
    # Pages of the other notebooks are not built in this test: links to them are the only ones allowed to be missing.
    unbuilt = [(p, u) for p, u in bad if site_path(p, u) not in r["skipped"]]
    assert unbuilt == [], f"broken links: {unbuilt[:10]}"


def test_index_links_every_notebook_in_layout_order(real_site):
    out, _ = real_site
    notebooks = sorted(p.stem for p in (REPO / "nbs").glob("*.ipynb"))
    links = [unquote(u) for u in local_links(out / "index.html")]
    first = {}
    for i, u in enumerate(links):
        first.setdefault(Path(urlsplit(u).path).stem, i)
    missing = [n for n in notebooks if n not in first]
    assert missing == [], f"index does not link {missing}"
    order = sorted(notebooks, key=lambda n: first[n])
    assert order == sorted(notebooks, key=lambda n: bd.layout_key(n + ".ipynb"))
    text = unescape(re.sub(r"<[^>]+>", "", (out / "index.html").read_text()))
    for n in notebooks:  # each notebook's H1 is shown
        assert h1_of(REPO / "nbs" / f"{n}.ipynb") in text, n


def test_index_links_every_results_figure(real_site):
    out, _ = real_site
    srcs = {unquote(u) for u in local_links(out / "index.html")}
    figures = [p for p in (REPO / "results").glob("*/figures/*") if p.suffix.lower() in bd.FIGURE_EXT]
    for f in figures:
        assert f.relative_to(REPO).as_posix() in srcs, f
        assert (out / f.relative_to(REPO)).read_bytes() == f.read_bytes()


def test_real_page_content(real_site):
    out, _ = real_site
    page = (out / f"{SMALL}.html").read_text()
    nb = nbformat.read(str(REPO / "nbs" / f"{SMALL}.ipynb"), as_version=4)
    assert f"<title>{h1_of(REPO / 'nbs' / f'{SMALL}.ipynb')}</title>" in unescape(page)
    code = next(c.source for c in nb.cells if c.cell_type == "code" and "import" in c.source)
    first_import = next(line for line in code.splitlines() if "import" in line).split()[-1]
    assert first_import in page


def test_layout_key_letters_between_numbers():
    names = ["10_e.ipynb", "02_a.ipynb", "01a_b.ipynb", "01_c.ipynb", "00_d.ipynb", "01b_f.ipynb", "notes.ipynb"]
    assert sorted(names, key=bd.layout_key) == ["00_d.ipynb", "01_c.ipynb", "01a_b.ipynb", "01b_f.ipynb",
                                                "02_a.ipynb", "10_e.ipynb", "notes.ipynb"]


def test_only_rejects_unknown_notebook(tmp_path):
    with pytest.raises(ValueError, match="no notebook named"):
        bd.build(REPO, tmp_path, execute=False, only=["99_nothing"], log=lambda *a: None)


# --- a tiny repository: link rewriting, executed copies, a broken link caught ------------------------------------

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def notebook(path, *cells, papermill_input=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(c[3:]) if c.startswith("md:") else nbformat.v4.new_code_cell(c)
                for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    if papermill_input:
        nb.metadata["papermill"] = {"input_path": papermill_input}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


@pytest.fixture
def tiny_repo(tmp_path):
    root = tmp_path / "repo"
    notebook(root / "nbs" / "00_a.ipynb",
             "md:# Alpha\n\n> The first\n> summary, `code`.\n\nSee [B](01_b.ipynb) and ![f](../results/r1/figures/f.png).",
             "#| default_exp a\nx = 1")
    notebook(root / "nbs" / "01a_c.ipynb", "md:# Gamma\n\n> Third.", "y = 2")
    notebook(root / "nbs" / "01_b.ipynb", "md:# Beta\n\n> Second.\n\n[gone](../results/r1/figures/nope.png)")
    notebook(root / "nbs" / "30_exp.ipynb", "md:# Experiment\n\n> Runs.\n\n![f](../results/r1/figures/f.png)")
    notebook(root / "results" / "r1" / "30_exp.ipynb", "md:# Experiment\n\n> Runs.\n\n![f](../results/r1/figures/f.png)",
             papermill_input="nbs/30_exp.ipynb")
    (root / "results" / "r1" / "figures").mkdir(parents=True)
    (root / "results" / "r1" / "figures" / "f.png").write_bytes(PNG)
    (root / "results" / "r1" / "tables").mkdir()
    (root / "results" / "r1" / "tables" / "t.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    (root / "results" / "r1" / "tables" / "t.csv").write_text("a,b\n1,2\n")
    (root / "results" / "r1" / "README.md").write_text("Made by [the notebook](../../nbs/30_exp.ipynb).\n")
    (root / "results" / "r2").mkdir()  # a folder with nothing in it yet
    (root / "results" / "summary.md").write_text("# Summary\n\nSee [r1](r1/).\n")
    (root / "misrep").mkdir()
    return root


def test_tiny_site(tiny_repo, tmp_path):
    out = tmp_path / "site"
    r = bd.build(tiny_repo, out, execute=False, log=lambda *a: None)
    assert r["skipped"] == set()
    assert r["built"] == {"index.html", "00_a.html", "01_b.html", "01a_c.html", "results/r1/30_exp.html",
                          "results/r1/index.html", "results/r2/index.html", "results/summary.html"}
    # The one broken link (nbs/01_b's nope.png) is caught, and only it.
    assert broken_links(out, sorted(r["built"])) == [("01_b.html", "../results/r1/figures/nope.png")]
    a = local_links(out / "00_a.html")
    assert "01_b.html" in a and "results/r1/figures/f.png" in a  # notebook link -> page; figure copied
    assert (out / "results/r1/figures/f.png").read_bytes() == PNG
    # The experiment's page is its executed copy (source-relative links still resolve), not the source.
    assert "../../results/r1/figures/f.png" not in local_links(out / "results/r1/30_exp.html")
    assert "figures/f.png" in local_links(out / "results/r1/30_exp.html")
    assert not (out / "30_exp.html").exists()
    assert "30_exp.html" in local_links(out / "results/r1/index.html")  # README's link to the source notebook
    assert "r1/index.html" in local_links(out / "results/summary.html")  # link to a results folder -> its page
    index = (out / "index.html").read_text()
    order = [index.index(f'href="{p}"') for p in ["00_a.html", "01_b.html", "01a_c.html", "results/r1/30_exp.html"]]
    assert order == sorted(order)
    assert "The first summary, <code>code</code>." in index and "misrep.a" in index
    assert 'src="results/r1/figures/f.png"' in index and "results/r1/index.html#t" in index
    assert "<td>1</td>" in (out / "results/r1/index.html").read_text()  # the Markdown table is rendered


def test_tiny_site_without_results(tiny_repo, tmp_path):
    shutil.rmtree(tiny_repo / "results")
    out = tmp_path / "site"
    r = bd.build(tiny_repo, out, execute=False, log=lambda *a: None)
    assert "30_exp.html" in r["built"]  # no executed copy: the source notebook's page
    bad = broken_links(out, sorted(r["built"]))
    assert sorted(u for _, u in bad) == ["../results/r1/figures/f.png", "../results/r1/figures/f.png",
                                         "../results/r1/figures/nope.png"]


def test_notebook_info(tiny_repo):
    info = bd.notebook_info(tiny_repo / "nbs" / "00_a.ipynb")
    assert info == {"title": "Alpha", "summary": "The first summary, `code`.", "module": "a"}


def test_execute_skips_slow_cells_and_caches(tmp_path):
    nbp = tmp_path / "nbs" / "00_x.ipynb"
    notebook(nbp, "md:# X", "print(6 * 7)", "#| slow\nraise RuntimeError('slow cell ran')")
    (tmp_path / "misrep").mkdir()
    (tmp_path / "misrep" / "m.py").write_text("A = 1\n")
    nb, secs = bd.execute_notebook(nbp, tmp_path / "cache", tmp_path / "misrep", timeout=120)
    assert nb.cells[1].outputs[0]["text"] == "42\n"
    assert nb.cells[2].outputs == [] and bd.errors_in(nb) == []
    assert nb.cells[2].metadata.get("tags", []) == []
    _, again = bd.execute_notebook(nbp, tmp_path / "cache", tmp_path / "misrep")
    assert again == 0.0  # cached
    assert (tmp_path / "cache" / "00_x.kernel.log").is_file()  # the kernel's own stderr, out of the terminal
    (tmp_path / "misrep" / "m.py").write_text("A = 2\n")  # the library changed: run again
    assert bd.cache_key(nbp, tmp_path / "misrep") != nb.metadata["misrep_docs"]["key"]


# --- make help ----------------------------------------------------------------------------------------------------

def test_make_help_lists_every_target():
    if not shutil.which("make"):
        pytest.skip("make not found")
    r = subprocess.run(["make", "-s", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    targets = re.findall(r"^([a-zA-Z0-9][a-zA-Z0-9_%.-]*):(?!=)", (REPO / "Makefile").read_text(), re.M)
    listed = re.findall(r"^  make (\S+) +(.+)$", r.stdout, re.M)
    assert [t for t, _ in listed] == targets
    assert [t for t, d in listed if "no description" in d] == []
    assert {"run", "test", "docs", "help"} <= set(targets)
    assert "make run" in r.stdout.splitlines()[0] and "make test" in r.stdout.splitlines()[0]
