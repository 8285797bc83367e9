"""Word lists for the fictional town. Written for this project; the people they make up are random.

Surnames are common family names (no individual is meant); given names are typical of the
generation they are drawn for. Readings are katakana, as core systems store フリガナ.
Entries are "表記:ヨミ" or "表記:ヨミ:weight" and are parsed once at import.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Name:
    text: str
    kana: str


def _names(spec: str) -> tuple[tuple[Name, ...], tuple[int, ...]]:
    names: list[Name] = []
    weights: list[int] = []
    for item in spec.split():
        parts = item.split(":")
        names.append(Name(parts[0], parts[1]))
        weights.append(int(parts[2]) if len(parts) > 2 else 1)
    return tuple(names), tuple(weights)


def _cumulative(weights: tuple[int, ...]) -> tuple[int, ...]:
    total = 0
    out: list[int] = []
    for weight in weights:
        total += weight
        out.append(total)
    return tuple(out)


# Heavier weights for a few names make the town look like a real small town, where some
# family names cluster. The three rare-character names are forced into the data as well.
SURNAMES, SURNAME_WEIGHTS = _names(
    """
    佐藤:サトウ:40 鈴木:スズキ:32 高橋:タカハシ:26 田中:タナカ:24 伊藤:イトウ:22 渡辺:ワタナベ:20
    山本:ヤマモト:20 中村:ナカムラ:19 小林:コバヤシ:18 加藤:カトウ:17 吉田:ヨシダ:16 山田:ヤマダ:15
    佐々木:ササキ:14 山口:ヤマグチ:13 松本:マツモト:13 井上:イノウエ:12 木村:キムラ:12 林:ハヤシ:11
    斎藤:サイトウ:11 清水:シミズ:11 山崎:ヤマザキ:10 森:モリ:10 池田:イケダ:10 橋本:ハシモト:9
    阿部:アベ:9 石川:イシカワ:9 山下:ヤマシタ:8 中島:ナカジマ:8 石井:イシイ:8 小川:オガワ:8
    前田:マエダ:8 岡田:オカダ:8 長谷川:ハセガワ:8 藤田:フジタ:7 後藤:ゴトウ:7 近藤:コンドウ:7
    村上:ムラカミ:7 遠藤:エンドウ:7 青木:アオキ:7 坂本:サカモト:6 斉藤:サイトウ:6 福田:フクダ:6
    太田:オオタ:6 西村:ニシムラ:6 藤井:フジイ:6 金子:カネコ:6 岡本:オカモト:6 藤原:フジワラ:6
    中野:ナカノ:5 三浦:ミウラ:5 原田:ハラダ:5 中川:ナカガワ:5 松田:マツダ:5 竹内:タケウチ:5
    小野:オノ:5 田村:タムラ:5 中山:ナカヤマ:5 和田:ワダ:5 石田:イシダ:5 森田:モリタ:5 上田:ウエダ:5
    原:ハラ:4 内田:ウチダ:4 柴田:シバタ:4 酒井:サカイ:4 宮崎:ミヤザキ:4 横山:ヨコヤマ:4 高木:タカギ:4
    安藤:アンドウ:4 宮本:ミヤモト:4 大野:オオノ:4 小島:コジマ:4 工藤:クドウ:4 谷口:タニグチ:4
    今井:イマイ:4 高田:タカダ:4 丸山:マルヤマ:4 増田:マスダ:4 杉山:スギヤマ:4 村田:ムラタ:4
    大塚:オオツカ:3 新井:アライ:3 小山:コヤマ:3 平野:ヒラノ:3 藤本:フジモト:3 河野:コウノ:3
    上野:ウエノ:3 野口:ノグチ:3 武田:タケダ:3 松井:マツイ:3 千葉:チバ:3 岩崎:イワサキ:3 菅原:スガワラ:3
    木下:キノシタ:3 久保:クボ:3 佐野:サノ:3 野村:ノムラ:3 松尾:マツオ:3 菊地:キクチ:3 杉本:スギモト:3
    市川:イチカワ:3 古川:フルカワ:3 大西:オオニシ:3 島田:シマダ:3 水野:ミズノ:3 桜井:サクライ:3
    高野:タカノ:3 渡部:ワタナベ:3 吉川:ヨシカワ:3 山内:ヤマウチ:3 西田:ニシダ:3 飯田:イイダ:3
    菅野:カンノ:3 北村:キタムラ:3 青葉:アオバ:6 若林:ワカバヤシ:5 緑川:ミドリカワ:5 葉山:ハヤマ:4
    台場:ダイバ:2 萩原:ハギワラ:3 関口:セキグチ:3 荒木:アラキ:3 大森:オオモリ:3 星野:ホシノ:3
    齋藤:サイトウ:2 渡邉:ワタナベ:2 澤田:サワダ:2 濱田:ハマダ:2 髙橋:タカハシ:3 山﨑:ヤマサキ:2
    𠮷田:ヨシダ:2
    """
)
SURNAME_CUMULATIVE = _cumulative(SURNAME_WEIGHTS)

# Names with characters that must survive storage unchanged: 髙 (U+9AD9), 﨑 (U+FA11, a CJK
# compatibility ideograph NFC would fold) and 𠮷 (U+20BB7, outside the BMP).
RARE_SURNAMES: tuple[Name, ...] = (Name("髙橋", "タカハシ"), Name("山﨑", "ヤマサキ"), Name("𠮷田", "ヨシダ"))

# Names whose characters the core system has not registered yet (外字): a non-BMP character
# and an ideographic variation sequence (葛 + VS17, the MJ glyph form).
GAIJI_SURNAMES: tuple[Name, ...] = (Name("𡈽屋", "ツチヤ"), Name("葛\U000e0100西", "カサイ"))

# Given names by birth cohort: (last birth year of the cohort, male names, female names).
_MALE_1945 = _names(
    "清:キヨシ 實:ミノル 茂:シゲル 勇:イサム 進:ススム 博:ヒロシ 正:タダシ 武:タケシ 弘:ヒロシ 稔:ミノル "
    "豊:ユタカ 昭:アキラ 正雄:マサオ 和夫:カズオ 武夫:タケオ 義雄:ヨシオ 幸雄:ユキオ 一郎:イチロウ "
    "三郎:サブロウ 秀夫:ヒデオ 静雄:シズオ 正男:マサオ 重雄:シゲオ 久雄:ヒサオ 政治:マサハル 貞夫:サダオ"
)[0]
_FEMALE_1945 = _names(
    "ハル:ハル キヨ:キヨ トシ:トシ 幸子:サチコ 和子:カズコ 節子:セツコ 文子:フミコ 久子:ヒサコ "
    "美代子:ミヨコ 弘子:ヒロコ 信子:ノブコ 清子:キヨコ 千代:チヨ ハナ:ハナ 君子:キミコ 静子:シズコ "
    "房子:フサコ 敏子:トシコ 喜美子:キミコ 富子:トミコ 芳子:ヨシコ 光子:ミツコ ミツ:ミツ 八重子:ヤエコ"
)[0]
_MALE_1970 = _names(
    "博:ヒロシ 隆:タカシ 誠:マコト 修:オサム 浩:ヒロシ 明:アキラ 和彦:カズヒコ 正人:マサト 健一:ケンイチ "
    "浩一:コウイチ 秀樹:ヒデキ 哲也:テツヤ 聡:サトシ 剛:ツヨシ 隆之:タカユキ 光男:ミツオ 勝:マサル "
    "敏夫:トシオ 康弘:ヤスヒロ 信也:シンヤ 幸一:コウイチ 俊彦:トシヒコ 英樹:ヒデキ 賢治:ケンジ 守:マモル"
)[0]
_FEMALE_1970 = _names(
    "恵子:ケイコ 京子:キョウコ 洋子:ヨウコ 裕子:ユウコ 幸子:サチコ 和子:カズコ 久美子:クミコ "
    "由美子:ユミコ 真由美:マユミ 直美:ナオミ 智子:トモコ 典子:ノリコ 明美:アケミ 悦子:エツコ "
    "美智子:ミチコ 順子:ジュンコ 陽子:ヨウコ 由美:ユミ 純子:ジュンコ 敦子:アツコ 眞理子:マリコ 弘美:ヒロミ"
)[0]
_MALE_1995 = _names(
    "誠:マコト 大輔:ダイスケ 健太:ケンタ 拓也:タクヤ 達也:タツヤ 直樹:ナオキ 和也:カズヤ 翔:ショウ "
    "大樹:ダイキ 亮:リョウ 健:ケン 学:マナブ 雄一:ユウイチ 崇:タカシ 裕介:ユウスケ 翔太:ショウタ "
    "拓海:タクミ 貴之:タカユキ 智也:トモヤ 慎吾:シンゴ 洋平:ヨウヘイ 祐樹:ユウキ 隼人:ハヤト 圭:ケイ"
)[0]
_FEMALE_1995 = _names(
    "恵:メグミ 愛:アイ 彩:アヤ 舞:マイ 麻衣:マイ 由佳:ユカ 智美:トモミ 香織:カオリ 美穂:ミホ 沙織:サオリ "
    "奈々:ナナ 明日香:アスカ 美咲:ミサキ 千尋:チヒロ 綾:アヤ 梓:アズサ 瞳:ヒトミ 友美:トモミ 理恵:リエ "
    "亜希子:アキコ 麻美:アサミ 絵美:エミ 里奈:リナ 優子:ユウコ"
)[0]
_MALE_RECENT = _names(
    "蓮:レン 大翔:ヒロト 陽翔:ハルト 悠真:ユウマ 湊:ミナト 蒼:アオイ 樹:イツキ 颯太:ソウタ 悠人:ユウト "
    "大和:ヤマト 陸:リク 奏太:ソウタ 陽太:ヨウタ 悠斗:ユウト 律:リツ 朝陽:アサヒ 碧:アオイ 蒼空:ソラ "
    "結翔:ユイト 新:アラタ 暖:ダン 颯:ハヤテ 瑛太:エイタ 航:ワタル"
)[0]
_FEMALE_RECENT = _names(
    "陽菜:ヒナ 結衣:ユイ 葵:アオイ 凛:リン さくら:サクラ 結愛:ユア 芽依:メイ 紬:ツムギ 美桜:ミオ "
    "莉子:リコ 心春:コハル 陽葵:ヒマリ 杏:アン 花:ハナ 澪:ミオ 咲良:サクラ 彩花:アヤカ ひまり:ヒマリ "
    "結菜:ユナ 芽衣:メイ 詩:ウタ 楓:カエデ 紗良:サラ 乃愛:ノア"
)[0]

GIVEN_NAMES: tuple[tuple[int, tuple[Name, ...], tuple[Name, ...]], ...] = (
    (1945, _MALE_1945, _FEMALE_1945),
    (1970, _MALE_1970, _FEMALE_1970),
    (1995, _MALE_1995, _FEMALE_1995),
    (9999, _MALE_RECENT, _FEMALE_RECENT),
)

# The town's districts: (name, postal code, kind). "chome" districts have 丁目-番-号 addresses,
# "oaza" ones 大字 + 番地 (the rural part of the town). 999-99xx: the 999 prefix is Yamagata's,
# so the 99xx block below it is used, which has no real delivery area.
DISTRICTS: tuple[tuple[str, str, str], ...] = (
    ("中央", "999-9901", "chome"),
    ("本町", "999-9902", "chome"),
    ("緑ヶ丘", "999-9903", "chome"),
    ("桜台", "999-9904", "chome"),
    ("東町", "999-9905", "chome"),
    ("西町", "999-9906", "chome"),
    ("南町", "999-9907", "chome"),
    ("若葉", "999-9908", "chome"),
    ("旭町", "999-9909", "chome"),
    ("栄町", "999-9910", "chome"),
    ("山手", "999-9911", "chome"),
    ("川端", "999-9912", "chome"),
    ("大字青葉", "999-9921", "oaza"),
    ("大字北浦", "999-9922", "oaza"),
    ("大字南沢", "999-9923", "oaza"),
)
DISTRICT_WEIGHTS: tuple[int, ...] = (10, 9, 9, 8, 7, 7, 6, 8, 6, 6, 4, 4, 5, 4, 3)
CHOME_NUMERALS = ("一", "二", "三", "四", "五")

# Apartment and housing-complex names for 方書; the room goes after, e.g. 「青葉荘101号室」.
BUILDINGS: tuple[str, ...] = (
    "青葉荘",
    "グリーンハイツ青葉台",
    "コーポ桜台",
    "メゾン若葉",
    "サンライズ中央",
    "町営住宅緑ヶ丘団地",
    "ハイツ旭",
    "レジデンス本町",
    "パークサイド栄",
    "川端コーポ",
    "ヴィラ東町",
    "アーバン西町",
    "フォレスト山手",
    "南町ハイツ",
    "第二青葉荘",
)

# Other places, all fictional, for 本籍 and 転入前住所.
ELSEWHERE: tuple[str, ...] = (
    "架空県みなと市港町",
    "架空県みなと市汐見",
    "架空県さくら川村大字桜川",
    "架空県ひばり野市本通",
    "架空県ひばり野市若草",
    "空想県ひかり市中央",
    "空想県ひかり市朝日町",
    "空想県ゆめの市栄",
    "想像県しらかば町白樺",
    "想像県ほしぞら市天神",
    "夢見県みずうみ市湖畔",
    "夢見県たかね村高嶺",
)
KANJI_DIGITS = "〇一二三四五六七八九"


@dataclass(frozen=True, slots=True)
class Nationality:
    """A nationality with its name as certificates print it and name parts to draw from."""

    name: str
    weight: int
    families: tuple[Name, ...]
    males: tuple[Name, ...]
    females: tuple[Name, ...]
    statuses: tuple[str, ...]  # 在留資格 most often seen for this group in a small town


def _latin(spec: str) -> tuple[Name, ...]:
    # "NGUYEN=グエン VAN_AN=ヴァン_アン": underscores stand for spaces (full-width in kana).
    out: list[Name] = []
    for item in spec.split():
        text, kana = item.split("=")
        out.append(Name(text.replace("_", " "), kana.replace("_", "\u3000")))
    return tuple(out)


NATIONALITIES: tuple[Nationality, ...] = (
    Nationality(
        "ベトナム",
        30,
        _latin("NGUYEN=グエン TRAN=チャン LE=レ PHAM=ファム HOANG=ホアン VU=ヴー DANG=ダン BUI=ブイ DO=ドー"),
        _latin(
            "VAN_AN=ヴァン_アン VAN_HUNG=ヴァン_フン DUC_MINH=ドゥク_ミン MINH_TUAN=ミン_トゥアン "
            "QUANG_HUY=クアン_フイ VAN_NAM=ヴァン_ナム THANH_LONG=タイン_ロン"
        ),
        _latin(
            "THI_HOA=ティ_ホア THI_LAN=ティ_ラン THI_MAI=ティ_マイ THU_TRANG=トゥー_チャン "
            "NGOC_ANH=ゴック_アイン THI_HUONG=ティ_フオン"
        ),
        ("技能実習", "特定技能", "技術・人文知識・国際業務", "留学"),
    ),
    Nationality(
        "中国",
        20,
        _latin("WANG=ワン LI=リー ZHANG=チャン LIU=リュウ CHEN=チェン YANG=ヤン ZHAO=チャオ HUANG=ホワン"),
        _latin("WEI=ウェイ HAO=ハオ JIANGUO=ジエングオ ZHIQIANG=ジーチアン YUXUAN=ユーシュエン"),
        _latin("JING=ジン NA=ナー YAN=イエン XIAOHONG=シャオホン MEILING=メイリン"),
        ("永住者", "技術・人文知識・国際業務", "家族滞在", "日本人の配偶者等"),
    ),
    Nationality(
        "フィリピン",
        15,
        _latin(
            "SANTOS=サントス REYES=レイエス CRUZ=クルス BAUTISTA=バウティスタ GARCIA=ガルシア MENDOZA=メンドーサ"
        ),
        _latin("JOSE=ホセ MARK_ANTHONY=マーク_アンソニー JOHN_PAUL=ジョン_ポール RAMON=ラモン"),
        _latin("MARIA_CRISTINA=マリア_クリスティーナ ANGELICA=アンジェリカ MARICEL=マリセル JOY=ジョイ"),
        ("永住者", "定住者", "日本人の配偶者等", "特定技能"),
    ),
    Nationality(
        "韓国",
        10,
        _latin("KIM=キム LEE=イ PARK=パク CHOI=チェ JUNG=チョン KANG=カン"),
        _latin("MINJUN=ミンジュン JIHO=ジホ SEOJUN=ソジュン YOUNGSOO=ヨンス"),
        _latin("SEOYEON=ソヨン HAYOON=ハユン JIWOO=ジウ MINJI=ミンジ"),
        ("永住者", "留学", "技術・人文知識・国際業務"),  # 特別永住者 only for those born here (see _town)
    ),
    Nationality(
        "ブラジル",
        8,
        _latin(
            "SILVA=シルバ SANTOS=サントス OLIVEIRA=オリベイラ SOUZA=ソウザ RODRIGUES=ロドリゲス FERREIRA=フェレイラ"
        ),
        _latin("CARLOS_EDUARDO=カルロス_エドゥアルド LUCAS=ルーカス RAFAEL=ハファエル MARCOS=マルコス"),
        _latin("ANA_PAULA=アナ_パウラ JULIANA=ジュリアナ FERNANDA=フェルナンダ CAMILA=カミラ"),
        ("定住者", "永住者"),
    ),
    Nationality(
        "ネパール",
        8,
        _latin("GURUNG=グルン SHRESTHA=シュレスタ TAMANG=タマン RAI=ライ MAGAR=マガル"),
        _latin("BIKASH=ビカス ANIL=アニル SURESH=スレス RAJESH=ラジェス"),
        _latin("SITA=シタ SUNITA=スニタ PRAMILA=プラミラ ANJALI=アンジャリ"),
        ("技能", "家族滞在", "留学", "特定技能"),
    ),
    Nationality(
        "インドネシア",
        6,
        _latin(
            "SAPUTRA=サプトラ WIJAYA=ウィジャヤ HIDAYAT=ヒダヤット PRATAMA=プラタマ SETIAWAN=セティアワン"
        ),
        _latin("AGUS=アグス BUDI=ブディ RIZKI=リズキ DIMAS=ディマス"),
        _latin("DEWI=デウィ RINA=リナ SITI=シティ PUTRI=プトリ"),
        ("技能実習", "特定技能"),
    ),
    Nationality(
        "米国",
        3,
        _latin(
            "SMITH=スミス JOHNSON=ジョンソン BROWN=ブラウン MILLER=ミラー DAVIS=デイビス WILSON=ウィルソン"
        ),
        _latin("JOHN_MICHAEL=ジョン_マイケル DAVID=デイビッド JAMES=ジェームズ DANIEL=ダニエル"),
        _latin("EMILY=エミリー SARAH=サラ JESSICA=ジェシカ ELIZABETH=エリザベス"),
        ("技術・人文知識・国際業務", "教育", "永住者"),
    ),
)
NATIONALITY_CUMULATIVE = _cumulative(tuple(n.weight for n in NATIONALITIES))

# Where foreign residents lived before (転入前住所 for arrivals from abroad).
COUNTRY_ADDRESS: dict[str, str] = {
    "ベトナム": "ベトナム社会主義共和国",
    "中国": "中華人民共和国",
    "フィリピン": "フィリピン共和国",
    "韓国": "大韓民国",
    "ブラジル": "ブラジル連邦共和国",
    "ネパール": "ネパール",
    "インドネシア": "インドネシア共和国",
    "米国": "アメリカ合衆国",
}
