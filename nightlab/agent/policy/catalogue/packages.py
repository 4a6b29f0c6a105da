"""A package the code imports is not installed.

nightlab runs offline and never installs anything into the user's environment, so no edit can fix this; the entry's
work is to say so clearly -- which module, which package provides it, which line imports it -- and stop the branch
with that reason instead of trying fixes that cannot work.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms

__all__ = ["PIP_NAMES", "recognise_missing_package", "repair_missing_package"]

# import name -> the distribution that provides it, where the two differ
PIP_NAMES = {
    "sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "Pillow", "yaml": "PyYAML", "skimage": "scikit-image",
    "bs4": "beautifulsoup4", "Crypto": "pycryptodome", "attr": "attrs", "dateutil": "python-dateutil",
    "dotenv": "python-dotenv", "jwt": "PyJWT", "serial": "pyserial", "fitz": "PyMuPDF", "docx": "python-docx",
    "pptx": "python-pptx", "magic": "python-magic", "torch_geometric": "torch-geometric", "mpl_toolkits": "matplotlib",
    "google": "protobuf", "pytorch_lightning": "pytorch-lightning", "lightning": "lightning", "tensorboardX":
    "tensorboardX", "umap": "umap-learn", "Levenshtein": "levenshtein", "faiss": "faiss-cpu",
}


def recognise_missing_package(sym: Symptoms) -> Match | None:
    m = sym.says(r"No module named '([\w.]+)'")
    if m is None or sym.exception not in ("ModuleNotFoundError", "ImportError", ""):
        return None
    module = m.group(1)
    top = module.split(".")[0]
    if top in ("torch", "numpy") and "." in module:
        return None  # a submodule gone from an installed package: an API change, not a missing package
    pkg = PIP_NAMES.get(top, top)
    return Match(f"the package {pkg} (module {top}) is not installed in the job's environment",
                 {"module": module, "top": top, "package": pkg})


def repair_missing_package(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    top = str(match.facts["top"])
    ours = {p for p in (*site.files, *site.tracked)
            if posixpath.basename(p) in (f"{top}.py", "__init__.py") and (
                posixpath.basename(p) == f"{top}.py" or posixpath.basename(posixpath.dirname(p)) == top)}
    if ours:
        return  # the repository has a module of that name: a path problem, not a missing package
    fr = site.frames[-1] if site.frames else None
    where = f" (imported at {fr.path}:{fr.line}{': ' + fr.code if fr.code else ''})" if fr else ""
    pkg = match.facts["package"]
    yield NoFix(f"{pkg} is not installed{where}, and nightlab cannot install packages: it runs offline and never "
                f"changes your environment. Install it (python -m pip install {pkg}) in the environment the training "
                "command uses, or remove the import, then run again; this branch is stopped")



