"""Real PDF files for tests, written with fpdf2 (and pypdf for encryption).

Every helper writes into the path it is given and returns that path, so tests
can build fixtures under ``tmp_path``. The sample texts are exported so tests
can look for known words in what comes back out. Output is deterministic (same
arguments, same bytes), except for encrypted files: encryption salts are random.
"""

from __future__ import annotations

import functools
import io
import random
import zlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

FIXED_DATE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOTO_DIR = Path("/usr/share/fonts/truetype/noto")
NOTO_SANS = NOTO_DIR / "NotoSans-Regular.ttf"
NOTO_DEVANAGARI = NOTO_DIR / "NotoSansDevanagari-Regular.ttf"
NOTO_THAI = NOTO_DIR / "NotoSansThai-Regular.ttf"

GERMAN_PAGES = [
    "Die Stadtverwaltung hat am Montag einen neuen Plan für den öffentlichen Nahverkehr vorgestellt. "
    "Nach Angaben des Bürgermeisters sollen die Straßenbahnen ab dem nächsten Jahr häufiger fahren, "
    "und an vielen Haltestellen werden überdachte Wartebereiche gebaut.\n\n"
    "Kritiker bemängeln, dass die Finanzierung noch nicht gesichert ist. Die Kosten werden auf "
    "ungefähr achtzig Millionen Euro geschätzt, die zum Teil vom Land übernommen werden sollen.",
    "Im zweiten Abschnitt geht es um die Radwege in der Innenstadt. Viele Bürgerinnen und Bürger "
    "wünschen sich breitere und sicherere Wege, die klar von der Fahrbahn getrennt sind.\n\n"
    "Die Verwaltung will bis zum Herbst eine Umfrage durchführen und die Ergebnisse anschließend "
    "im Gemeinderat vorstellen. Erst danach wird über die einzelnen Maßnahmen entschieden.",
]

HINDI_SENTENCES = [
    "भारत एक विशाल देश है।",
    "यहाँ अनेक भाषाएँ बोली जाती हैं।",
    "दिल्ली भारत की राजधानी है।",
    "हिमालय पर्वत देश के उत्तर में स्थित है।",
    "गंगा नदी को बहुत पवित्र माना जाता है।",
    "किसान खेतों में गेहूँ और चावल उगाते हैं।",
    "बच्चे सुबह स्कूल जाते हैं और शाम को खेलते हैं।",
    "इस रिपोर्ट में शहर की जल आपूर्ति के बारे में जानकारी दी गई है।",
]
# Words without vowel signs that reorder, so they survive any glyph order.
HINDI_WORDS = ["भारत", "देश", "दिल्ली", "राजधानी", "किसान", "स्कूल"]

THAI_SENTENCES = [
    "ประเทศไทยตั้งอยู่ในเอเชียตะวันออกเฉียงใต้",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "คนไทยส่วนใหญ่นับถือศาสนาพุทธ",
    "อาหารไทยมีชื่อเสียงไปทั่วโลก",
    "แม่น้ำเจ้าพระยาไหลผ่านกรุงเทพมหานคร",
    "ฤดูฝนเริ่มต้นในเดือนพฤษภาคมและสิ้นสุดในเดือนตุลาคม",
    "รายงานฉบับนี้อธิบายเกี่ยวกับการจัดการน้ำในเมือง",
]
THAI_WORDS = ["ประเทศไทย", "กรุงเทพมหานคร", "อาหาร", "แม่น้ำ", "รายงาน"]

LEFT_COLUMN = (
    "The left column describes the harbour. Fishing boats leave before dawn and return in the "
    "early afternoon with their catch. Gulls follow them all the way to the pier, where the "
    "market opens at two o'clock. Local restaurants buy most of the fish directly from the boats."
)
RIGHT_COLUMN = (
    "The right column describes the lighthouse. It was built in 1874 from granite blocks quarried "
    "nearby. The lamp was electrified in 1921 and automated in 1986. Visitors can climb the "
    "spiral staircase of 212 steps during the summer months and enjoy the view over the bay."
)

TOPICS = [
    "coastal erosion",
    "medieval bookbinding",
    "urban beekeeping",
    "railway signalling",
    "glacier monitoring",
    "sourdough fermentation",
    "wind turbine maintenance",
    "library cataloguing",
    "volcanic soils",
    "bridge inspection",
    "orchard pruning",
    "river flood defences",
    "solar panel recycling",
    "bird migration",
    "textile dyeing",
    "water treatment",
    "forest fire prevention",
    "harbour dredging",
    "vaccine cold chains",
    "tunnel ventilation",
    "desert agriculture",
    "museum conservation",
    "seismic retrofitting",
    "public transit timetables",
    "coral reef surveys",
    "grain storage",
    "paper recycling",
    "mountain rescue",
    "street lighting",
    "wetland restoration",
    "ceramic glazing",
    "census methodology",
]
PLACES = [
    "Aberdeen",
    "Bergen",
    "Coimbra",
    "Dubrovnik",
    "Eindhoven",
    "Florence",
    "Gdansk",
    "Hobart",
    "Innsbruck",
    "Jaipur",
    "Kyoto",
    "Lyon",
    "Montreal",
    "Nairobi",
    "Oaxaca",
    "Porto",
    "Quito",
    "Reykjavik",
    "Seville",
    "Tallinn",
    "Utrecht",
    "Valparaiso",
    "Winnipeg",
    "Zagreb",
]
PEOPLE = [
    "Dr. Amara Osei",
    "Prof. Lena Vogel",
    "Ing. Marco Bellini",
    "Ms. Priya Raman",
    "Mr. Tomas Novak",
    "Dr. Hana Sato",
    "Prof. Diego Alvarez",
    "Ms. Ingrid Larsen",
    "Dr. Samuel Okafor",
    "Mr. Yusuf Demir",
]
METRICS = [
    ("the annual budget", "thousand euros"),
    ("the number of volunteers", "people"),
    ("the measured output", "tonnes"),
    ("the average delay", "minutes"),
    ("the surveyed area", "hectares"),
    ("the recorded incidents", "cases"),
]
SENTENCES = [
    "In {year}, the team in {place} reported that {metric} reached {value} {unit}.",
    "{person} led the {topic} programme in {place} and published the results in {year}.",
    "The main difficulty was that {topic} depends heavily on the weather in {month}.",
    "A follow-up study compared {place} with {other}, where {metric} was only {value2} {unit}.",
    "Residents were consulted twice, and most of them supported continuing the work.",
    "The report recommends training more staff and sharing data between the two sites.",
    "Costs were lower than expected because equipment was borrowed from {other}.",
    "{person} noted that the method could be reused for {topic2} with small changes.",
    "The committee will review the programme again in {year2}, after two more seasons of data.",
]
MONTHS = ["January", "March", "April", "June", "August", "October", "November", "December"]


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _new_pdf(font: Path | None, size: float) -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)  # same input, same bytes, same sha256
    pdf.set_auto_page_break(False)  # one list entry must stay exactly one page
    pdf.set_margins(18, 18, 18)
    if font is None:
        pdf.set_font("Helvetica", size=size)
    else:
        pdf.add_font("body", fname=str(font))
        pdf.set_font("body", size=size)
    return pdf


def _write(pdf: FPDF, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def text_pdf(path: Path, pages: Sequence[str], font: Path | None = None, font_size: float = 11) -> Path:
    """One PDF page per entry; Helvetica when the text is Latin-1, else Noto Sans unless `font` is given."""
    if font is None and not all(_latin1(p) for p in pages):
        font = NOTO_SANS
    pdf = _new_pdf(font, font_size)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, font_size * 0.5, text, align="L")
    return _write(pdf, path)


def long_page_text(page_no: int, seed: int = 0) -> str:
    """The text of page `page_no` of `long_pdf`: a numbered section with facts unique to that page."""
    rng = random.Random(seed * 100_003 + page_no)
    topic = TOPICS[page_no % len(TOPICS)]
    place = PLACES[(page_no * 7) % len(PLACES)]
    title = f"Section {page_no}: {topic.capitalize()} in {place}"
    paragraphs = [
        " ".join(_sentence(rng, t, topic, place) for t in rng.sample(SENTENCES, rng.randint(3, 5)))
        for _ in range(3)
    ]
    marker = f"Reference code LD-{page_no:04d} identifies this section in the archive."
    return "\n\n".join([title, *paragraphs, marker])


def _sentence(rng: random.Random, template: str, topic: str, place: str) -> str:
    metric, unit = rng.choice(METRICS)
    return template.format(
        year=rng.randint(1990, 2024),
        year2=rng.randint(2025, 2030),
        place=place,
        other=rng.choice(PLACES),
        metric=metric,
        unit=unit,
        value=rng.randint(12, 9800),
        value2=rng.randint(3, 900),
        person=rng.choice(PEOPLE),
        topic=topic,
        topic2=rng.choice(TOPICS),
        month=rng.choice(MONTHS),
    )


def long_pdf(path: Path, n_pages: int, seed: int = 0) -> Path:
    """A report of `n_pages` pages; page n holds "Section n: ..." and the code "LD-000n"."""
    return text_pdf(path, [long_page_text(n, seed) for n in range(1, n_pages + 1)], font_size=10)


def two_column_pdf(path: Path, left: str = LEFT_COLUMN, right: str = RIGHT_COLUMN) -> Path:
    pdf = _new_pdf(None, 11)
    pdf.add_page()
    gap = 10.0
    col_w = (pdf.w - pdf.l_margin - pdf.r_margin - gap) / 2
    pdf.set_xy(pdf.l_margin, pdf.t_margin)
    pdf.multi_cell(col_w, 5.5, left, align="L")
    pdf.set_xy(pdf.l_margin + col_w + gap, pdf.t_margin)
    pdf.multi_cell(col_w, 5.5, right, align="L")
    return _write(pdf, path)


def devanagari_pdf(path: Path) -> Path:
    """Hindi text in Noto Sans Devanagari (unshaped: fpdf2 shaping needs uharfbuzz)."""
    half = len(HINDI_SENTENCES) // 2
    pages = [" ".join(HINDI_SENTENCES[:half]), " ".join(HINDI_SENTENCES[half:])]
    return text_pdf(path, pages, font=NOTO_DEVANAGARI, font_size=13)


def thai_pdf(path: Path) -> Path:
    # Thai has no spaces between words, so one sentence a line keeps fpdf2 from splitting words.
    return text_pdf(path, ["\n".join(THAI_SENTENCES)], font=NOTO_THAI, font_size=13)


def encrypted_pdf(
    path: Path,
    user_password: str,
    aes: bool = True,
    owner_password: str | None = None,
    pages: Sequence[str] = ("This document is confidential.", "Second page of the secret report."),
) -> Path:
    """A text PDF encrypted with AES-256 (needs pypdf[crypto] to read) or RC4-128."""
    plain = PdfReader(io.BytesIO(_text_pdf_bytes(pages)))
    writer = PdfWriter(clone_from=plain)
    writer.encrypt(
        user_password=user_password,
        owner_password=owner_password or f"{user_password}-owner",
        algorithm="AES-256" if aes else "RC4-128",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def _text_pdf_bytes(pages: Sequence[str]) -> bytes:
    pdf = _new_pdf(None if all(_latin1(p) for p in pages) else NOTO_SANS, 11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 5.5, text, align="L")
    return bytes(pdf.output())


@functools.cache
def _scan_font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(NOTO_SANS), 14)


def scanned_page_image(label: str = "Scanned page", width: int = 420, height: int = 594) -> Image.Image:
    """A greyscale picture of a typed page, as a scanner without OCR makes it."""
    img = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(img)
    draw.text((35, 30), label, fill=20, font=_scan_font())
    rng = random.Random(label)
    for y in range(70, height - 40, 14):  # words as ink blobs: rendering glyphs is slow and adds nothing
        x = 35
        while x < width - 80:
            word = rng.randint(12, 60)
            draw.rectangle((x, y, x + word, y + 6), fill=rng.randint(30, 90))
            x += word + 7
    return img


def _add_image_page(pdf: FPDF, label: str) -> None:
    pdf.add_page()
    pdf.image(scanned_page_image(label), x=0, y=0, w=pdf.w, h=pdf.h)


def image_only_pdf(path: Path, n_pages: int = 1) -> Path:
    pdf = _new_pdf(None, 11)
    for n in range(1, n_pages + 1):
        _add_image_page(pdf, f"Scanned page {n}")
    return _write(pdf, path)


def mixed_scanned_pdf(path: Path, n_pages: int = 10, scanned: Iterable[int] = (3, 7, 8, 9)) -> Path:
    """Text pages, except the 1-based page numbers in `scanned`, which hold only an image."""
    image_pages = set(scanned)
    pdf = _new_pdf(None, 10)
    for n in range(1, n_pages + 1):
        if n in image_pages:
            _add_image_page(pdf, f"Scanned page {n}")
        else:
            pdf.add_page()
            pdf.multi_cell(0, 5, long_page_text(n), align="L")
    return _write(pdf, path)


def truncated_pdf(path: Path, keep: float = 0.25) -> Path:
    """The first `keep` fraction of a valid PDF whose catalog and page tree come last, so nothing survives."""
    data = _text_pdf_bytes([long_page_text(n) for n in range(1, 4)])
    return _write_bytes(path, data[: max(16, int(len(data) * keep))])


def garbage_pdf(path: Path, size: int = 4096, seed: int = 0) -> Path:
    """A valid PDF header followed by random bytes."""
    rng = random.Random(seed)
    return _write_bytes(path, b"%PDF-1.7\n" + rng.randbytes(size))


def empty_file(path: Path) -> Path:
    return _write_bytes(path, b"")


def html_as_pdf(path: Path) -> Path:
    """A saved web page renamed to .pdf: a common upload mistake."""
    html = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Annual report</title>'
        "</head>\n<body><h1>Annual report 2024</h1><p>Download the PDF from the link below.</p>"
        '<a href="report.pdf">report.pdf</a></body></html>\n'
    )
    return _write_bytes(path, html.encode())


def raw_pdf(objects: Sequence[bytes], root: int = 1) -> bytes:
    """Assemble numbered objects (1..n) into a PDF with a correct xref table and trailer."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\n" % (len(objects) + 1, root)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def _deflate_zeros(n_bytes: int) -> bytes:
    comp = zlib.compressobj(1)  # the second pass squeezes it anyway; level 1 is 3x faster
    chunk = bytes(1 << 20)
    parts = [comp.compress(chunk) for _ in range(n_bytes // len(chunk))]
    return b"".join(parts) + comp.flush()


def bomb_pdf(path: Path, expanded_mb: int = 256) -> Path:
    """One page whose content stream inflates to `expanded_mb` MiB (pypdf stops at 75 MB), deflated twice."""
    once = _deflate_zeros(expanded_mb << 20)
    twice = zlib.compress(once, 9)
    content = _stream(twice, b"/Filter [/FlateDecode /FlateDecode] ")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        content,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return _write_bytes(path, raw_pdf(objects))


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def damaged_page_pdf(path: Path, n_pages: int = 3, damaged: Iterable[int] = (2,)) -> Path:
    """Text pages, except the 1-based `damaged` ones, whose content uses a filter that does not exist."""
    bad = set(damaged)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(n_pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n_pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for n in range(1, n_pages + 1):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R"
            b" /Resources << /Font << /F1 3 0 R >> >> >>" % (len(objects) + 2)
        )
        if n in bad:
            objects.append(_stream(b"garbled", b"/Filter /NoSuchFilter "))
        else:
            objects.append(_stream(b"BT /F1 12 Tf 72 720 Td (This is page %d of the report.) Tj ET" % n))
    return _write_bytes(path, raw_pdf(objects))


def _write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


SCAN_DPI = 300
ENGLISH_SCAN_PAGE = (
    "The harbour office published its yearly report on the fishing fleet. Forty-two boats were "
    "registered, three fewer than last year, and the catch of cod fell by about twelve percent.\n\n"
    "The council plans to repair the northern pier before the winter storms. Work should begin in "
    "October and last six weeks; the ferry will use the southern landing meanwhile."
)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Lines of at most `width` pixels: whole words where there are spaces, else characters (Thai)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" ") if " " in paragraph else list(paragraph):
            joiner = " " if line and " " in paragraph else ""
            if line and font.getlength(line + joiner + word) > width:
                lines.append(line)
                line = word
            else:
                line += joiner + word
        lines.append(line)
    return lines


def scanned_text_image(text: str, font: Path = NOTO_SANS, size_pt: float = 12) -> Image.Image:
    """An A4 page of `text` at SCAN_DPI, white paper and black ink: a clean scan of a typed page."""
    px = SCAN_DPI / 72
    width, height, margin = round(595 * px), round(842 * px), round(60 * px)
    face = ImageFont.truetype(str(font), round(size_pt * px))  # raqm shapes Devanagari and Thai
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    y = margin
    for line in _wrap(text, face, width - 2 * margin):
        draw.text((margin, y), line, fill=0, font=face)
        y += round(size_pt * px * 1.6)
    return img


def scanned_text_pdf(path: Path, pages: Sequence[str], font: Path | Sequence[Path] = NOTO_SANS) -> Path:
    """An image-only PDF: one scanned page (scanned_text_image) per entry, without a text layer.
    `font` is one for all pages or one per page."""
    fonts = [font] * len(pages) if isinstance(font, Path) else list(font)
    return image_pages_pdf(
        path, [scanned_text_image(text, face) for text, face in zip(pages, fonts, strict=True)]
    )


def image_pages_pdf(path: Path, images: Iterable[Image.Image]) -> Path:
    """One A4 page per picture, the picture covering the page; no text layer."""
    pdf = _new_pdf(None, 11)
    for image in images:
        pdf.add_page()
        pdf.image(image, x=0, y=0, w=pdf.w, h=pdf.h)
    return _write(pdf, path)


def blank_pdf(path: Path, n_pages: int = 1) -> Path:
    """Empty pages: no text layer, and nothing for OCR to find."""
    pdf = _new_pdf(None, 11)
    for _ in range(n_pages):
        pdf.add_page()
    return _write(pdf, path)
