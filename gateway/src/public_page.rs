//! The readable pages of the public copy ([`crate::public`]): the index of
//! cities and one page per city, in English or Chinese, rendered from the
//! signed policies the gateway holds. Every sentence about a rule is
//! generated from the rule's fields (tessera-core), never from free text.

use tessera_core::policy::Policy;
use tessera_core::policy_doc;
use tessera_proto::v1 as pb;

/// The page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// From `?lang=zh` / `?lang=en` (English unless Chinese is asked for).
    pub fn from_query(query: Option<&str>) -> Self {
        let zh = query.is_some_and(|q| q.split('&').any(|kv| kv == "lang=zh"));
        if zh { Lang::Zh } else { Lang::En }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    fn pick(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A Unix time as "2026-12-01 00:00 UTC".
pub fn when(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => secs.to_string(),
    }
}

/// One published version of a city's policy, as the page shows it.
#[derive(Debug, Clone)]
pub struct Version {
    /// The document.
    pub document: pb::PolicyDocument,
    /// Its rules, parsed.
    pub policy: Policy,
    /// When the next version took (or takes) over, if one is published.
    pub until: Option<i64>,
    /// SHA-256 of the signed bytes, hex.
    pub sha256: String,
}

/// The published versions of a city's policy, oldest effective first, as
/// the page shows them; versions that do not parse are left out (the
/// gateway checked every one when it was published).
pub fn versions(held: &[(u32, i64, pb::SignedPolicy)]) -> Vec<Version> {
    use sha2::Digest;
    let mut out: Vec<Version> = vec![];
    for (_, _, signed) in held {
        let bytes = prost::Message::encode_to_vec(signed);
        let Ok(document) =
            <pb::PolicyDocument as prost::Message>::decode(signed.payload.as_slice())
        else {
            continue;
        };
        let Ok(policy) = policy_doc::check_document(&document) else {
            continue;
        };
        if let Some(last) = out.last_mut() {
            last.until = Some(document.effective_from);
        }
        out.push(Version {
            document,
            policy,
            until: None,
            sha256: hex::encode(sha2::Sha256::digest(&bytes)),
        });
    }
    out
}

/// Which version is in force at `now`: the last whose date has come.
pub fn in_force(versions: &[Version], now: i64) -> Option<usize> {
    versions
        .iter()
        .rposition(|v| v.document.effective_from <= now)
}

fn rules(policy: &Policy, lang: Lang) -> Vec<(String, String)> {
    match lang {
        Lang::En => policy.rule_sentences(),
        Lang::Zh => policy.rule_sentences_zh(),
    }
}

fn summary(policy: &Policy, lang: Lang) -> Vec<String> {
    match lang {
        Lang::En => policy.summary_sentences(),
        Lang::Zh => policy.summary_sentences_zh(),
    }
}

/// What changes from `old` to `new`, one line per change, in `lang`:
/// rules added, removed or changed (matched by id), and the scoring
/// sentences that differ.
pub fn changes(old: &Policy, new: &Policy, lang: Lang) -> Vec<String> {
    let mut out = vec![];
    for (a, b) in summary(old, lang).iter().zip(summary(new, lang).iter()) {
        if a != b {
            out.push(match lang {
                Lang::En => {
                    format!("Scoring changes: was \u{201c}{a}\u{201d}, becomes \u{201c}{b}\u{201d}")
                }
                Lang::Zh => format!("计分方式变更：原为“{a}”，改为“{b}”"),
            });
        }
    }
    let before = rules(old, lang);
    let after = rules(new, lang);
    for (id, sentence) in &after {
        match before.iter().find(|(i, _)| i == id) {
            None => out.push(match lang {
                Lang::En => format!("New rule [{id}]: {sentence}"),
                Lang::Zh => format!("新增规则 [{id}]：{sentence}"),
            }),
            Some((_, was)) if was != sentence => out.push(match lang {
                Lang::En => format!("Rule [{id}] changes: was \u{201c}{was}\u{201d}, becomes \u{201c}{sentence}\u{201d}"),
                Lang::Zh => format!("规则 [{id}] 变更：原为“{was}”，改为“{sentence}”"),
            }),
            Some(_) => {}
        }
    }
    for (id, was) in &before {
        if !after.iter().any(|(i, _)| i == id) {
            out.push(match lang {
                Lang::En => format!("Rule [{id}] is removed: {was}"),
                Lang::Zh => format!("删除规则 [{id}]：{was}"),
            });
        }
    }
    if out.is_empty() {
        out.push(
            lang.pick(
                "No rule changes in effect (only the version and its name).",
                "规则的实际效果没有变化（只有版本号和名称）。",
            )
            .to_owned(),
        );
    }
    out
}

fn head(title: &str, lang: Lang, other: &str) -> String {
    let switch = match lang {
        Lang::En => format!("<a href=\"{other}?lang=zh\" hreflang=\"zh\">中文</a>"),
        Lang::Zh => format!("<a href=\"{other}?lang=en\" hreflang=\"en\">English</a>"),
    };
    format!(
        "<!doctype html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>body{{font-family:sans-serif;max-width:52em;margin:auto;padding:1em;line-height:1.5}}\
         code,pre{{background:#f4f4f4}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em}}</style>\
         </head><body><p>{switch}</p>\n<h1>{}</h1>\n",
        lang.code(),
        escape(title),
        escape(title)
    )
}

const FOOT: &str = "</body></html>\n";

/// The index: every city with a published policy, and the trust material.
pub fn index(cities: &[(u32, String)], lang: Lang, sequence: Option<u64>) -> String {
    let mut out = head(
        lang.pick(
            "Scoring policies of every city, in public",
            "各城市评分规则公开查询",
        ),
        lang,
        "/",
    );
    out.push_str(&format!(
        "<p>{}</p>\n<ul>\n",
        lang.pick(
            "Each city's signed scoring policy in force, the announced next version and every version ever in force. Anyone can read and verify them; no certificate is needed.",
            "这里公布每个城市现行的、已签名的评分规则，已公告的下一版本，以及曾经生效的每一个版本。任何人都可以阅读和验证，无需证书。"
        )
    ));
    for (code, name) in cities {
        out.push_str(&format!(
            "<li><a href=\"/cities/{code:06}?lang={}\">{} ({code:06})</a></li>\n",
            lang.code(),
            escape(name)
        ));
    }
    out.push_str("</ul>\n");
    out.push_str(&format!(
        "<p>{}: <a href=\"/trust-list\">/trust-list</a> ({} {}), <a href=\"/root.crt\">/root.crt</a></p>\n",
        lang.pick("Trust material", "信任材料"),
        lang.pick("sequence", "序号"),
        sequence.map_or_else(|| "-".to_owned(), |s| s.to_string()),
    ));
    out.push_str(FOOT);
    out
}

fn rules_html(policy: &Policy, lang: Lang) -> String {
    let mut out = String::from("<ul>\n");
    for line in summary(policy, lang) {
        out.push_str(&format!("<li>{}</li>\n", escape(&line)));
    }
    out.push_str(&format!(
        "</ul>\n<p>{}</p>\n<ol class=\"rules\">\n",
        lang.pick("Rules:", "规则：")
    ));
    for (id, sentence) in rules(policy, lang) {
        out.push_str(&format!(
            "<li>{} <small>[{}]</small></li>\n",
            escape(&sentence),
            escape(&id)
        ));
    }
    out.push_str("</ol>\n");
    out
}

/// One city's page at `now`.
pub fn city(code: u32, name: &str, versions: &[Version], now: i64, lang: Lang) -> String {
    let path = format!("/cities/{code:06}");
    let title = match lang {
        Lang::En => format!("{name} ({code:06}): scoring policy"),
        Lang::Zh => format!("{name}（{code:06}）评分规则"),
    };
    let mut out = head(&title, lang, &path);
    let current = in_force(versions, now);
    match current.and_then(|i| versions.get(i)) {
        Some(v) => {
            out.push_str(&match lang {
                Lang::En => format!(
                    "<h2 id=\"in-force\">In force: version {} \u{201c}{}\u{201d}, since {}</h2>\n",
                    v.document.policy_version,
                    escape(v.policy.name()),
                    when(v.document.effective_from)
                ),
                Lang::Zh => format!(
                    "<h2 id=\"in-force\">现行：第 {} 版“{}”，自 {} 起生效</h2>\n",
                    v.document.policy_version,
                    escape(v.policy.name()),
                    when(v.document.effective_from)
                ),
            });
            out.push_str(&rules_html(&v.policy, lang));
        }
        None => out.push_str(&format!(
            "<h2 id=\"in-force\">{}</h2>\n",
            lang.pick("No version is in force yet.", "目前没有生效的版本。")
        )),
    }
    let announced_from = current.map_or(0, |i| i + 1);
    for v in versions.iter().skip(announced_from) {
        out.push_str(&match lang {
            Lang::En => format!(
                "<h2 class=\"announced\">Announced: version {} \u{201c}{}\u{201d}, takes effect {}</h2>\n",
                v.document.policy_version,
                escape(v.policy.name()),
                when(v.document.effective_from)
            ),
            Lang::Zh => format!(
                "<h2 class=\"announced\">已公告：第 {} 版“{}”，将于 {} 生效</h2>\n",
                v.document.policy_version,
                escape(v.policy.name()),
                when(v.document.effective_from)
            ),
        });
        if let Some(old) = current.and_then(|i| versions.get(i)) {
            out.push_str(&format!(
                "<p>{}</p>\n<ul class=\"changes\">\n",
                lang.pick(
                    "What changes from the version in force:",
                    "与现行版本相比的变化："
                )
            ));
            for line in changes(&old.policy, &v.policy, lang) {
                out.push_str(&format!("<li>{}</li>\n", escape(&line)));
            }
            out.push_str("</ul>\n");
        }
        out.push_str(&rules_html(&v.policy, lang));
    }
    out.push_str(&history(code, versions, now, lang));
    out.push_str(&verify_help(code, versions, lang));
    out.push_str(FOOT);
    out
}

fn history(code: u32, versions: &[Version], now: i64, lang: Lang) -> String {
    let mut out = format!(
        "<h2 id=\"history\">{}</h2>\n<table>\n<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>SHA-256</th></tr>\n",
        lang.pick("Every version, with its dates", "所有版本及其日期"),
        lang.pick("version", "版本"),
        lang.pick("in force from", "生效时间"),
        lang.pick("until", "截止时间"),
        lang.pick("signed file", "签名文件"),
    );
    for v in versions {
        let n = v.document.policy_version;
        let until = match v.until {
            Some(t) => when(t),
            None if v.document.effective_from <= now => {
                lang.pick("still in force", "仍在生效").to_owned()
            }
            None => "-".to_owned(),
        };
        out.push_str(&format!(
            "<tr><td>{n}</td><td>{}</td><td>{until}</td><td><a href=\"/cities/{code:06}/policies/{n}\">policy-v{n}.signed</a></td><td><code>{}</code></td></tr>\n",
            when(v.document.effective_from),
            v.sha256
        ));
    }
    out.push_str("</table>\n");
    out.push_str(&format!(
        "<p>{} <a href=\"/cities/{code:06}/policies\">/cities/{code:06}/policies</a></p>\n",
        lang.pick(
            "The same list for machines (JSON):",
            "供程序读取的同一列表（JSON）："
        )
    ));
    out
}

fn verify_help(code: u32, versions: &[Version], lang: Lang) -> String {
    let n = versions.last().map_or(1, |v| v.document.policy_version);
    format!(
        "<h2 id=\"verify\">{}</h2>\n<p>{}</p>\n<pre>curl -O https://HOST/trust-list\ncurl -O https://HOST/root.crt\ncurl -o policy-v{n}.signed https://HOST/cities/{code:06}/policies/{n}\ntessera policy show --file policy-v{n}.signed --trust-list trust-list --root root.crt</pre>\n<p>{}</p>\n",
        lang.pick("How to check what you read", "如何核验您读到的内容"),
        lang.pick(
            "Every version is a document signed by the city's badge-signer key. Download it, the trust list and the national root certificate (compare the root's fingerprint with one published elsewhere, for instance in print), then check the signature and read the rules without any certificate of your own:",
            "每个版本都是由该城市的发码签名密钥签名的文件。下载该文件、信任列表和国家根证书（请与其他渠道公布的根证书指纹比对，例如纸质公告），然后无需任何证书即可核验签名并阅读规则："
        ),
        lang.pick(
            "The command prints the same rules as this page, or refuses a file that does not verify. A version signed by a badge-signer key since rotated verifies against the trust list of its time, or with --certificate and that signer's certificate.",
            "该命令打印与本页相同的规则；文件核验不通过时会拒绝。由已轮换的发码签名密钥签名的版本，请使用当时的信任列表，或用 --certificate 指定该签名证书核验。"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_english_unless_chinese_is_asked_for() {
        assert_eq!(Lang::from_query(None), Lang::En);
        assert_eq!(Lang::from_query(Some("lang=zh")), Lang::Zh);
        assert_eq!(Lang::from_query(Some("x=1&lang=zh")), Lang::Zh);
        assert_eq!(Lang::from_query(Some("lang=fr")), Lang::En);
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }

    #[test]
    fn a_changed_rule_reads_as_a_change_in_both_languages() {
        let text = tessera_core::policy::DEFAULT_POLICY;
        let old = Policy::parse(text).unwrap();
        let new = Policy::parse(
            &text
                .replace("version = 2", "version = 3")
                .replace("score = -100", "score = -90"),
        )
        .unwrap();
        let en = changes(&old, &new, Lang::En);
        assert_eq!(en.len(), 1, "{en:?}");
        assert!(en[0].contains("score \u{2212}100"), "{en:?}");
        assert!(
            en[0].contains(
                "becomes \u{201c}A positive test sampled within the last 14 days: score \u{2212}90"
            ),
            "{en:?}"
        );
        let zh = changes(&old, &new, Lang::Zh);
        assert!(
            zh[0].contains("改为“最近 14 天内采样的一次阳性检测：扣 90 分"),
            "{zh:?}"
        );
        assert!(changes(&old, &old, Lang::En)[0].starts_with("No rule changes"));
    }
}
