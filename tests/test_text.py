from __future__ import annotations

from app.domain.text import normalize_kana_input, search_key, to_hiragana, to_katakana


def test_width_and_kana_folding() -> None:
    assert search_key("ｱｵﾊﾞ") == search_key("アオバ") == search_key("あおば") == "あおば"
    assert search_key("ヴァン") == "ゔぁん"
    assert search_key("ｶﾞｯｺｳ") == search_key("がっこう")


def test_spaces_and_case_removed() -> None:
    assert search_key("山田　太郎") == search_key("山田 太郎") == search_key("山田", "太郎") == "山田太郎"
    assert search_key("NGUYEN", "VAN AN") == "nguyenvanan"
    assert search_key("ＮＧＵＹＥＮ　ｖａｎ ａｎ") == "nguyenvanan"


def test_parts_concatenate_so_a_full_name_query_matches() -> None:
    key = search_key("佐藤", "花子", "サトウ", "ハナコ", "")
    assert search_key("佐藤花子") in key
    assert search_key("ｻﾄｳ ﾊﾅｺ") in key
    assert search_key("はなこ") in key


def test_variant_kanji_fold_for_search_only() -> None:
    yamasaki = "山\ufa11"  # 﨑, a compatibility ideograph without a decomposition
    assert search_key(yamasaki) == search_key("山崎")
    assert search_key("髙橋") == search_key("高橋")
    assert search_key("\U00020bb7田") == search_key("吉田")  # 𠮷 outside the BMP
    # The input is never changed in place; only the key is folded.
    assert yamasaki == "山\ufa11"


def test_variation_selectors_are_ignored() -> None:
    assert search_key("葛\U000e0100西") == search_key("葛西")


def test_empty() -> None:
    assert search_key() == ""
    assert search_key("", "　 ") == ""


def test_kana_conversions() -> None:
    assert to_hiragana("アオバダイ ヽヾ") == "あおばだい ゝゞ"
    assert to_katakana("あおばだい") == "アオバダイ"
    assert to_katakana("ー") == "ー"


def test_normalize_kana_input() -> None:
    assert normalize_kana_input("やまだ") == "ヤマダ"
    assert normalize_kana_input("ﾔﾏﾀﾞ") == "ヤマダ"
    assert normalize_kana_input("  やまだ   たろう ") == "ヤマダ\u3000タロウ"
    assert normalize_kana_input("ｽｽﾞｷ-") == "スズキー"
    assert normalize_kana_input("ガーデン") == "ガーデン"
    assert normalize_kana_input("ＮＧＵＹＥＮ") == "NGUYEN"
