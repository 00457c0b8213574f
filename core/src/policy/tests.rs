use super::*;

#[test]
fn rules_read_in_plain_words_from_their_fields() {
    let policy = Policy::default_policy().unwrap();
    let sentences: Vec<String> = policy
        .rule_sentences()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        sentences,
        [
            "A positive test sampled within the last 14 days: score \u{2212}100, colour at least red.",
            "A close contact within the last 14 days, unless a negative test was sampled after it within the last 3 days (such a test lifts the rule for 3 days after it was sampled, and a badge it makes better ends then): score \u{2212}40, colour at least yellow.",
            "A secondary contact within the last 7 days, unless a negative test was sampled after it within the last 3 days (such a test lifts the rule for 3 days after it was sampled, and a badge it makes better ends then): score \u{2212}20.",
            "A departure from a high-risk area within the last 7 days, unless a negative test was sampled after it within the last 3 days (such a test lifts the rule for 3 days after it was sampled, and a badge it makes better ends then): score \u{2212}40, colour at least yellow.",
            "A departure from a medium- or high-risk area within the last 7 days: score \u{2212}15.",
            "A declaration of fever, loss of taste or smell or shortness of breath within the last 3 days, unless a negative test was sampled after it within the last 3 days (such a test lifts the rule for 3 days after it was sampled, and a badge it makes better ends then): score \u{2212}30, colour at least yellow.",
        ]
    );
}
