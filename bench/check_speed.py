"""How long `nurture check` and `nurture fmt` take, on the example workflows and a 5,000-line file.

Run: .venv/bin/python bench/check_speed.py   (or `make bench`)
Prints wall-clock times; targets from issue 2: workflows/ well under 1 s, 5,000 lines under 2 s.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dsl.formatter import format_text  # noqa: E402
from dsl.loader import load_paths  # noqa: E402


def generated_workflow(index: int) -> str:
    """About 50 lines: scores with where/max/decay, fit rules, tags, five stages, messages."""
    w = f"w{index}"
    return f"""workflow {w} {{
  entry on subscribed where source == "site_{index}"
  exit on unsubscribed
  timezone "Europe/Warsaw"
  quiet hours 21:00 to 08:00
  limit push to 1 per day, 3 per week
  limit email to 2 per week
  score engagement {{
    on page_view where url contains "/p{index}" +30
    on page_view where url contains "/pricing" +2
    on email_open +10 max 30 per week
    on push_click +5
    on purchase where amount > 1000 and currency in ["EUR", "PLN"] +50
    on offer_declined -20
    decay 10% every 30 days
  }}
  score fit {{
    when industry in ["fashion", "retail"] +20
    when role == "marketing" or subscriber.seniority >= 3 +10
  }}
  tag "t{index}" on page_view where url contains "/t{index}"
  stage awareness {{
    after 10 minutes: send push {w}_welcome
    every 3 days, 3 times: send push {w}_news
    go to interest when engagement >= 20
  }}
  stage interest {{
    every 7 days: send email {w}_letter
    go to selection when engagement >= 50 and fit >= 10
  }}
  stage selection {{
    on enter: send push {w}_offer with code = "C{index}", percent = 10
    after 2 days unless purchase: send push {w}_news
    go to sale on purchase
    go to interest when idle for 14 days
  }}
  stage sale {{
    on enter: send webhook {w}_hook
    go to after_sale after 1 day
  }}
  stage after_sale {{ every 30 days: send email {w}_letter }}
}}
message {w}_welcome push {{ title "Hi {{{{ subscriber.first_name | default('there') }}}}!" url "https://x.example/{index}" }}
message {w}_welcome push lang "pl" {{ title "Cześć {{{{ subscriber.first_name | default('') }}}}!" }}
message {w}_news push {{ title "News {index}" body "Static text" }}
message {w}_offer push {{ title "{{{{ percent }}}}% off" body "Use {{{{ code }}}}" ttl 2 days urgency high }}
message {w}_letter email {{ subject "Letter {index}" text "Hello {{{{ subscriber.first_name | default('you') }}}}" }}
message {w}_hook webhook {{ url "https://crm.example/{index}" body "{{\\"lead\\": \\"{{{{ subscriber.id }}}}\\", \\"score\\": {{{{ scores.engagement }}}}}}" }}
"""


def timed(action: object, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    nurture = Path(sys.executable).parent / "nurture"
    workflows = ROOT / "workflows"
    cli = timed(lambda: subprocess.run([str(nurture), "check", str(workflows)], check=True,
                                       capture_output=True), 5)
    in_process = timed(lambda: load_paths([str(workflows)]), 20)
    files = len(list(workflows.rglob("*.flow")))
    lines = sum(len(p.read_text().splitlines()) for p in workflows.rglob("*.flow"))
    print(f"workflows/ ({files} files, {lines} lines):")
    print(f"  `nurture check workflows` (whole process, median of 5): "
          f"{statistics.median(cli) * 1000:.0f} ms")
    print(f"  load + check in process (median of 20):                "
          f"{statistics.median(in_process) * 1000:.1f} ms")

    with tempfile.TemporaryDirectory() as folder:
        big = Path(folder) / "big.flow"
        parts, count = [], 0
        while sum(part.count("\n") for part in parts) < 5000:
            parts.append(generated_workflow(count))
            count += 1
        big.write_text("".join(parts), encoding="utf-8")
        lines = big.read_text().count("\n")
        result = load_paths([str(big)])
        assert result.ok, result.diagnostics[:3]
        cold_cli = timed(lambda: subprocess.run([str(nurture), "check", str(big)], check=True,
                                                capture_output=True), 3)
        warm = timed(lambda: load_paths([str(big)]), 3)
        print(f"generated file ({lines} lines, {count} workflows, {6 * count} messages):")
        print(f"  `nurture check big.flow` (whole process, median of 3):  "
              f"{statistics.median(cold_cli):.2f} s")
        print(f"  load + check in process (median of 3):                 "
              f"{statistics.median(warm):.2f} s")
        text = big.read_text(encoding="utf-8")
        fmt_cli = timed(lambda: subprocess.run([str(nurture), "fmt", "--check", str(big)],
                                               check=False, capture_output=True), 3)
        fmt_warm = timed(lambda: format_text(text), 3)
        print(f"  `nurture fmt --check big.flow` (whole process, median of 3): "
              f"{statistics.median(fmt_cli):.2f} s")
        print(f"  laying it out in process (median of 3):                 "
              f"{statistics.median(fmt_warm):.2f} s")


if __name__ == "__main__":
    main()
