"""Data: the code points llama.cpp's Unicode 15.1 tables do not know (used by lesson 2b's pre-tokenizer).

Compatibility data, kept out of the lesson so the lesson reads as the idea. The list holds the code
points that are letters or numbers in the `regex` package's (newer) Unicode and were unassigned in
Unicode 15.1; tests/test_tokenizer*.py check the cuts against llama.cpp's token ids.
"""
from __future__ import annotations

# ---- Unicode versions ----
# llama.cpp classifies characters with its own tables, made from Unicode 15.1; the `regex` package
# follows newer Unicode. Letters and digits added since 15.1 (Unicode 16 and 17: Egyptian hieroglyphs
# ext. A, CJK ext. J, Garay, ...) are unassigned, hence symbols, to llama.cpp. To cut where it cuts,
# the regexes run on a copy of the text in which those characters are replaced by U+FDD0 (a
# permanent non-character, a symbol to both), and the cuts are applied to the real text.
NEWER_THAN_15_1 = (
    "558 58B-58C 88F C5C CDC 1C89-1C8A 208F 209D-209F A7CB-A7CF A7D2 A7D4 A7DA-A7DD A7E2 A7F1 AB6C-AB6D "
    "105C0-105F3 107BB-107BF 10940-10959 10D40-10D65 10D6F-10D85 10EC2-10EC7 10ED9-10EEE 11380-11389 "
    "1138B 1138E 11390-113B5 113B7 113D1 113D3 116D0-116E3 11B0A 11BC0-11BE0 11BF0-11BF9 11DB0-11DDB "
    "11DE0-11DE9 11DF1 1246F 12475-1247F 12550-12686 13460-143FA 16100-1611D 16130-16139 16D40-16D6C "
    "16D70-16D79 16EA0-16EB8 16EBB-16ED3 16FF2-16FF6 187F8-187FF 18CD6-18CDA 18CFF 18D09-18D20 "
    "18D80-18DF2 18E00-19191 191A0-191D2 1B123-1B128 1B168 1CCF0-1CCF9 1D6A6 1DF1F-1DF24 1DF2B-1DF81 "
    "1DF90-1DF96 1DFCD-1DFFF 1E5D0-1E5ED 1E5F0-1E5FA 1E6C0-1E6DE 1E6E0-1E6E2 1E6E4-1E6E5 1E6E7-1E6ED "
    "1E6F0-1E6F4 1E6FE-1E6FF 2B73A-2B73F 2B81E 2CEA2-2CEAD 323B0-33479 3D000-3FC3F")


def _newer_chars_table() -> dict[int, int]:
    table = {}
    for span in NEWER_THAN_15_1.split():
        first, _, last = span.partition("-")
        for cp in range(int(first, 16), int(last or first, 16) + 1):
            table[cp] = 0xFDD0
    return table


AS_LLAMA_CPP_SEES_IT = _newer_chars_table()  # str.translate table: newer letters -> U+FDD0
