//! The rules of a policy in plain Chinese, generated from the rules' fields
//! exactly as the English sentences are (never from a rule's free-text
//! description), so that both languages say what is applied.

use super::{
    ColourName, Conditions, ContactName, Policy, RecordType, RiskName, Rule, SymptomName,
    TestKindName,
};

fn span(hours: u32) -> String {
    if hours.is_multiple_of(24) {
        format!("{} 天", hours / 24)
    } else {
        format!("{hours} 小时")
    }
}

fn symptom(s: SymptomName) -> &'static str {
    match s {
        SymptomName::Fever => "发热",
        SymptomName::Cough => "咳嗽",
        SymptomName::SoreThroat => "咽痛",
        SymptomName::LossOfTasteOrSmell => "味觉或嗅觉丧失",
        SymptomName::ShortnessOfBreath => "呼吸急促",
        SymptomName::Fatigue => "乏力",
    }
}

fn colour(c: ColourName) -> &'static str {
    match c {
        ColourName::Green => "绿码",
        ColourName::Yellow => "黄码",
        ColourName::Red => "红码",
    }
}

/// The verb for a record's time.
fn timed(record: RecordType) -> &'static str {
    match record {
        RecordType::Test => "采样",
        RecordType::Vaccination => "接种",
        RecordType::Exposure | RecordType::Travel | RecordType::Symptoms => "记录",
    }
}

fn subject(record: RecordType, when: &Conditions) -> String {
    match record {
        RecordType::Test => {
            let result = match when.positive {
                Some(true) => "阳性",
                Some(false) => "阴性",
                None => "",
            };
            let kind = match when.test_kind {
                Some(TestKindName::Pcr) => "核酸",
                Some(TestKindName::Antigen) => "抗原",
                None => "",
            };
            format!("一次{result}{kind}检测")
        }
        RecordType::Vaccination => match when.min_dose {
            Some(d) => format!("一次疫苗接种（第 {d} 剂或以后）"),
            None => "一次疫苗接种".into(),
        },
        RecordType::Exposure => match when.contact {
            Some(ContactName::Close) => "一次密切接触".into(),
            Some(ContactName::Secondary) => "一次次密切接触".into(),
            None => "一次接触通知".into(),
        },
        RecordType::Travel => match when.min_risk {
            Some(RiskName::High) => "一次离开高风险地区的记录".into(),
            Some(RiskName::Medium) => "一次离开中风险或高风险地区的记录".into(),
            Some(RiskName::Low) | None => "一次离开风险地区的记录".into(),
        },
        RecordType::Symptoms => match &when.any_symptom_of {
            Some(any) if !any.is_empty() => {
                let words: Vec<&str> = any.iter().map(|s| symptom(*s)).collect();
                format!("一次申报{}的症状申报", words.join("或"))
            }
            _ => "一次症状申报".into(),
        },
    }
}

impl Rule {
    fn sentence_zh(&self) -> String {
        let mut s = String::new();
        let mut ages = vec![];
        if let Some(h) = self.within_hours {
            ages.push(format!("最近 {}内", span(h)));
        }
        if let Some(h) = self.older_than_hours {
            ages.push(format!("{}以前", span(h)));
        }
        if !ages.is_empty() {
            s.push_str(&format!("{}{}的", ages.join("且"), timed(self.record)));
        }
        s.push_str(&subject(self.record, &self.when));
        if self.latest_only {
            s.push_str("（只计同类中最新的一次）");
        }
        if let Some(u) = &self.unless_later {
            let lifter = subject(u.record, &u.when);
            let verb = timed(u.record);
            s.push_str(&match u.lifts_for_hours {
                None => format!("，除非此后有{lifter}（{verb}在其后）"),
                Some(h) => format!(
                    "，除非此后最近 {}内{verb}了{lifter}（这样的检测自{verb}起 {}内解除本规则，因此变好的码也在那时到期）",
                    span(h),
                    span(h)
                ),
            });
        }
        let mut effects = vec![];
        if self.score != 0 || (self.colour.is_none() && self.valid_hours_after_record.is_none()) {
            effects.push(if self.score < 0 {
                format!("扣 {} 分", self.score.unsigned_abs())
            } else {
                format!("加 {} 分", self.score)
            });
        }
        if let Some(c) = self.colour {
            effects.push(format!("至少为{}", colour(c)));
        }
        if let Some(h) = self.valid_hours_after_record {
            effects.push(format!("码的有效期最多到该记录后 {}", span(h)));
        }
        format!("{s}：{}。", effects.join("，"))
    }
}

impl Policy {
    /// Every rule in one plain Chinese sentence each, in policy order, from
    /// the rule's fields, like [`Policy::rule_sentences`].
    pub fn rule_sentences_zh(&self) -> Vec<(String, String)> {
        self.rules
            .iter()
            .map(|r| (r.id.clone(), r.sentence_zh()))
            .collect()
    }

    /// How scores, bands and validity work, in Chinese, like
    /// [`Policy::summary_sentences`].
    pub fn summary_sentences_zh(&self) -> Vec<String> {
        let v = &self.validity;
        vec![
            format!(
                "每人从 {} 分起算；每条适用的规则加上它的分数，总分保持在 0 到 100 之间。",
                self.base_score
            ),
            format!(
                "低于 {} 分为红码，低于 {} 分为黄码，否则为绿码；规则规定的颜色只会让码变差。",
                self.bands.red_below, self.bands.yellow_below
            ),
            format!(
                "绿码有效 {}，黄码有效 {}，红码有效 {}，除非某条规则让它更早到期。",
                span(v.green_hours),
                span(v.yellow_hours),
                span(v.red_hours)
            ),
            "阴性检测从不对任何人不利：它只按下列规则所写的时长解除点名它的规则；因它变好的码在解除结束时到期，且仅当届时颜色会变差。".to_owned(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_a_chinese_sentence_from_its_fields() {
        let policy = Policy::default_policy().unwrap();
        let zh = policy.rule_sentences_zh();
        assert_eq!(zh.len(), policy.rule_sentences().len());
        assert_eq!(
            zh[0].1,
            "最近 14 天内采样的一次阳性检测：扣 100 分，至少为红码。"
        );
        assert!(
            zh[1].1.starts_with(
                "最近 14 天内记录的一次密切接触，除非此后最近 3 天内采样了一次阴性检测"
            ),
            "{}",
            zh[1].1
        );
        assert!(zh[1].1.ends_with("：扣 40 分，至少为黄码。"), "{}", zh[1].1);
        assert!(
            zh[5].1.contains("发热或味觉或嗅觉丧失或呼吸急促"),
            "{}",
            zh[5].1
        );
    }
}
