"""Characters that masked names and addresses are made of.

Every character here is encodable in GB2312 (so in GBK and GB18030), Big5, Shift_JIS and EUC-KR, so a
pseudonym fits any charset a message carrying a Chinese name can be in, and the same name masks to the
same characters whatever charset it arrived in. The tables are checked against those charsets in the
tests; changing them changes every pseudonym, so they only ever grow at the end.
"""

from __future__ import annotations

import unicodedata

SURNAMES = (
    "王李周徐朱胡郭何高林梁宋唐曹彭曾肖田董袁潘于蔡余杜程魏丁任沈姚姜崔汪范金石廖夏付方白孟熊秦邱江尹薛段"
    "雷侯史陶黎毛邵万覃武戴莫孔向常康施牛樊葛安易伍倪庄章岳殷申耿焦左柳甘祝包符舒阮柯梅童凌季裴苗谷盛曲翁"
    "游辛管柴蒙祁蒲房屈解牟艾尤穆司卓古吉戚岑景卜冷晏席米柏宗瞿桂全臧苟卞仇隋商沙巫寇桑甄仲虞敖池麻苑"
)
"""Single-character surnames, common in mainland China."""

COMPOUND_SURNAMES = tuple("上官 皇甫 慕容 令狐 宇文 夏侯 端木 申屠 公冶 百里 司徒 司空".split())
"""Two-character surnames a masked name may get where the original began with one."""

COMPOUND_SURNAMES_SEEN = frozenset(
    "欧阳 歐陽 司马 司馬 上官 诸葛 諸葛 东方 東方 皇甫 尉迟 尉遲 公孙 公孫 慕容 令狐 宇文 长孙 "
    "長孫 夏侯 轩辕 軒轅 端木 西门 西門 南宫 南宮 独孤 獨孤 申屠 澹台 公冶 百里 呼延 赫连 "
    "赫連 司徒 司空 钟离 鍾離 闻人 聞人".split()
)
"""Compound surnames recognised at the start of an original name (simplified and traditional)."""

GIVEN = (
    "芳娜敏磊洋勇杰娟明超秀霞平桂英玉萍建文力斌宇浩健俊帆旭波云峰林志海亮成春梅雪琳晶燕慧琴欣怡嘉佳晨雨思博"
    "宏永安家新正子小金珍淑惠翠彩莉菊丹蓉山川盛和祥福喜光庭立民生士元中仁兆先全冬友天如妙孝孟季宗宜宣容岳常"
    "年幸康弘彬心忠慈才承振方昌昭景智月朋朗望松柏桃梓森武水江泉洪湖源澄炎照爽珊珠理皓盈睦秋章端竹笑素美羽"
    "翔育良芙花苑茂虹裕迪通道郁隆雄雅香黎"
)
"""Characters of masked given names (and of the masked part of Chinese addresses)."""

CONSONANTS = "BCDFGHJKLMNPRSTVWZ"
VOWELS = "AEIOU"
"""Latin names are masked into consonant-vowel patterns of the same length."""

ADDRESS_KEEP = frozenset("路街道巷弄号號院栋棟幢楼樓层層单單元室村组組社区區苑园園镇鎮乡鄉座#-()（）,，、 ")
"""Characters of a Chinese address line that say what kind of place it is: kept so it still reads as
an address (青年路123号 → 宏林路407号)."""

ADMIN_SUFFIXES = (
    "特别行政区",
    "自治区",
    "自治州",
    "自治县",
    "地区",
    "省",
    "市",
    "州",
    "盟",
    "区",
    "區",
    "县",
    "縣",
    "旗",
)
"""Endings of the administrative divisions down to the county: an address's leading divisions (云南省
昆明市五华区) are kept, as the 身份证 keeps its region code."""


def is_cjk(ch: str) -> bool:
    """A Han character (the BMP blocks and the supplementary ideographic planes)."""
    code = ord(ch)
    return (
        0x3400 <= code <= 0x4DBF
        or 0x4E00 <= code <= 0x9FFF
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x3FFFF
    )


def is_latin_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def is_letter(ch: str) -> bool:
    """Any other alphabetic character (accented Latin, Cyrillic, ...): masked as a Latin letter."""
    return ch.isalpha() and not is_cjk(ch) and unicodedata.category(ch).startswith("L")
