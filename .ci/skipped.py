"""Fail when more than a share of a pytest run's tests were skipped (from its JUnit XML).

Usage: python .ci/skipped.py RESULTS.xml --at-most 0.10
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="JUnit XML written by pytest --junitxml")
    parser.add_argument("--at-most", type=float, required=True, help="largest share skipped")
    args = parser.parse_args()
    root = ET.parse(args.results).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    share = skipped / tests if tests else 1.0
    print(f"{skipped} of {tests} tests skipped ({share:.1%}; at most {args.at_most:.0%} allowed)")
    if share > args.at_most:
        reasons = sorted({el.get("message", "") for el in root.iter("skipped")})
        print("skip reasons:", *reasons[:10], sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
