//! The waiting helper's own rules (`wait.rs`), kept apart so that the
//! CLI's tests, which include `wait.rs` by path, do not run these too.

use crate::wait::*;
use std::time::Duration;

#[test]
fn a_ready_probe_gives_its_value_and_a_late_one_is_waited_for() {
    assert_eq!(wait_until("now", Duration::ZERO, || Some(7)), 7);
    let mut tries = 0;
    let value = wait("the third try", Duration::from_secs(10))
        .every(Duration::from_millis(1))
        .until(|| {
            tries += 1;
            (tries == 3).then_some(tries)
        });
    assert_eq!((value, tries), (3, 3));
}

#[test]
fn a_timeout_names_what_was_awaited_for_how_long_and_the_last_answer() {
    let mut n = 0;
    let err = wait("the answer", Duration::from_millis(30))
        .every(Duration::from_millis(5))
        .poll(|| -> Result<(), u32> {
            n += 1;
            Err(n)
        })
        .unwrap_err();
    assert_eq!(err.what, "the answer");
    assert!(err.waited >= Duration::from_millis(30), "{err:?}");
    assert_eq!(err.last, Some(n.to_string()));
    assert!(n >= 2, "tried once more after the bound: {n}");
    let text = err.to_string();
    assert!(text.starts_with("waited "), "{text}");
    assert!(
        text.ends_with(&format!("for the answer; last seen: {n}")),
        "{text}"
    );
    let never = wait("a false probe", Duration::ZERO).poll(|| false);
    assert_eq!(never.unwrap_err().last, None);
}

#[test]
#[should_panic(expected = "for the flag; it never came")]
fn until_fails_the_test_when_the_time_is_up() {
    wait_until("the flag", Duration::from_millis(10), || false);
}

#[tokio::test]
async fn an_async_probe_may_borrow_and_change_what_it_captures() {
    let mut seen = vec![];
    let got = wait("a fifth answer", Duration::from_secs(10))
        .every(Duration::from_millis(1))
        .until_async(async || {
            tokio::task::yield_now().await;
            seen.push(seen.len());
            (seen.len() == 5).then(|| seen.clone())
        })
        .await;
    assert_eq!(got, [0, 1, 2, 3, 4]);
    let err = wait("an async answer", Duration::ZERO)
        .poll_async(async || Err::<(), _>("nope"))
        .await
        .unwrap_err();
    assert_eq!(err.last.as_deref(), Some("\"nope\""));
}
