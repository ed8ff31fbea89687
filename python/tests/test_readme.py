"""The README's Python example is python/examples/quickstart.py, and it runs as written."""

import re
import subprocess
import sys

from conftest import FASHION, ROOT, _require


def test_readme_example_is_the_quickstart_and_runs():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## From Python and Flower", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    script = ROOT / "python" / "examples" / "quickstart.py"
    assert block == script.read_text(), "README's example and python/examples/quickstart.py differ"
    _require(FASHION, "apt-get install dataset-fashion-mnist")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    accs = [float(a) for a in re.findall(r"round \d: test accuracy ([0-9.]+)", out.stdout)]
    assert len(accs) == 3 and accs[2] > 0.5, out.stdout
