# SPDX-License-Identifier: GPL-2.0
#
# Sphinx configuration of khugepaged_rs's documentation. `make docs`
# (tools/build/docs) builds it into build/docs with `sphinx-build -W`.
#
# The debugfs ABI page (abi.rst) renders ABI/testing with the kernel's own
# kernel-abi directive, as the kernel's documentation renders its ABI
# files: set KERNEL_SRC to a Linux source tree (7.2 or later:
# Documentation/sphinx/kernel_abi.py, tools/lib/python/abi). Without it the
# page shows the ABI file as it is.

import os
import sys

from docutils.parsers.rst import Directive, directives
from docutils import nodes

project = "khugepaged_rs"
author = "the khugepaged_rs maintainers"
copyright = "the khugepaged_rs authors; GPL-2.0"
root_doc = "index"
exclude_patterns = ["ABI"]
extensions = []
html_theme = "alabaster"
html_show_sourcelink = False

_here = os.path.dirname(os.path.abspath(__file__))
_kernel_src = os.environ.get("KERNEL_SRC")

if _kernel_src:
    # kernel_abi reads $srctree/Documentation/ABI: ours.
    os.environ["srctree"] = os.path.dirname(_here)
    sys.path.insert(0, os.path.join(_kernel_src, "tools/lib/python"))
    sys.path.insert(0, os.path.join(_kernel_src, "Documentation/sphinx"))
    extensions.append("kernel_abi")


class PlainAbi(Directive):
    """kernel-abi stand-in: the files of Documentation/ABI/<arg> verbatim."""

    required_arguments = 1
    optional_arguments = 0
    final_argument_whitespace = True
    option_spec = {"no-files": directives.flag}

    def run(self):
        top = os.path.join(_here, "ABI", self.arguments[0])
        out = []
        for name in sorted(os.listdir(top)):
            path = os.path.join(top, name)
            self.state.document.settings.record_dependencies.add(path)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            out.append(nodes.literal_block(text, text))
        return out


def setup(app):
    if not _kernel_src:
        app.add_directive("kernel-abi", PlainAbi)
