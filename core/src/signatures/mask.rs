//! Default masking: the rules that turn the variable parts of a message into `<*>` before
//! any clustering happens.
//!
//! The rules are general, not tuned to one system: each is a statement about what a
//! kind of token is in practically every log, with the reason next to it in the code.
//! Masking early does two jobs: it makes the many lines of one template byte-identical
//! (so the miner's exact-match cache answers most lines without any similarity search),
//! and it leaves the similarity search only the variables that look like words (user
//! names, host names). What it must not do is erase the words and codes that tell two
//! messages apart (`returned 503` / `returned 404`, `status=FAILED` / `status=OK`): a
//! new signature after a deploy is evidence only if it means a new kind of message.
//!
//! A message is cut into whitespace-separated tokens and each token into *runs* of
//! word-like bytes (letters, digits, `_ . - / \ @ + % ~ $` and any non-ASCII byte)
//! separated by punctuation (`: = , ; ( ) [ ] { } < > # | * ! ? '` …). Punctuation is kept
//! as it is, so `sshd[24200]:` becomes `sshd[<*>]:` and `10.0.3.17:5432` becomes
//! `<*>:<*>`. A run is masked when:
//!
//! - it contains a digit: numbers, hex ids (`0x1f`, `8f91ab22…`), UUIDs, IPv4 addresses,
//!   versions, durations (`30ms`, `1.5s`), sizes (`64KB`), ids like `blk_-1608` — except
//!   a name with a small index (`en0`, `eth1`, `ssh2`, `IPV6`: letters then one or two
//!   digits), which names an interface, a device or a protocol version;
//! - it is a path (`/var/log/app`, `./x/y`, `~/x`, `C:\dir`), an e-mail address, or a long
//!   hex string without digits (16+ hex letters, part of a trace id);
//! - it is `true`, `false` or `null`: the printed value of a flag;
//! - it is a qualified name of three or more dotted parts (`com.apple.cache.daily`,
//!   `host.example.com`) or a file name (`chrome.exe`) — except one that ends in an
//!   upper-case constant (`android.intent.action.SCREEN_ON`) or is a class name
//!   (`java.io.IOException`), which say what happened;
//! - it directly follows `=` (`user=alice` → `user=<*>`) — except an outcome: an
//!   upper-case word (`status=FAILED`) or a word after a key that names a state
//!   (`state=active`, `exitStatus=failed`).
//!
//! Whole-token rules come first: a URL (`scheme://…`) is one `<*>`; an IPv6 or MAC
//! address (hex groups with at least two `:`, e.g. `fe80::1`, `[2001:db8::1]:443`) is one
//! `<*>`; a month or weekday name next to a number (`Fri Jun 17 07:07:00 2005`) is part
//! of a date and masked; a number from 100 to 599 after a word that announces an outcome
//! (`returned 503`, `status: 404`, `HTTP/1.1 500`) stays. A quoted phrase (`"…"`, `'…'` or
//! a backtick pair, opening at the start of a token or after `=`, `:`, `(`, `[`, `{`, `,`,
//! and closing before whitespace or punctuation) becomes `"<*>"` (a request line keeps
//! its method: `"GET <*>"`), as does a quoted value of a key (`tag="AudioMix"`); one quoted word elsewhere (`state 'Active'`) is left to
//! the run rules. Apostrophes inside words (`can't`) are not quotes. Consecutive lone
//! `<*>` tokens collapse into one, so lists of any length share a template.

/// The placeholder for a variable.
pub(crate) const WILDCARD: &str = "<*>";

/// Masks `message` onto the end of `out`, tokens separated by one space. `scratch` is
/// reused for the quoted-value pass so that the common case allocates nothing. The
/// tokens' byte ranges, which only a line that misses the miner's caches needs, are
/// found afterwards by [`token_spans`].
pub(crate) fn mask_message(message: &str, out: &mut String, scratch: &mut String) {
    let base = out.len();
    // One pass finds the tokens and what kinds of bytes they hold; a line with a quote
    // stops at the first token that has one, its quoted values are masked, and the pass
    // goes on from that token in the new text (most lines have no quote, so they are
    // scanned once instead of once more just to look for quotes). Masking the quoted
    // values changes nothing before the first quote, so what was decided about the
    // tokens before it stands: their bytes are the same, and what they looked at ahead
    // (whether the next token starts with a digit or is a date word) is the same, as a
    // quote's token keeps its first byte and is never a date word.
    let mut at = Resume::default();
    if !mask_tokens(message, out, base, false, &mut at) {
        mask_quotes(message, scratch);
        mask_tokens(scratch, out, base, true, &mut at);
    }
}

/// Where [`mask_tokens`] stopped at a quote, and what it had decided so far, so that it
/// can go on in the text with the quoted values masked.
#[derive(Default)]
struct Resume {
    /// Start of the token with the quote.
    at: usize,
    /// Byte range of the token before it.
    prev: (usize, usize),
    /// Whether the last token written is a lone `<*>`.
    prev_lone: bool,
    /// Kept tokens not yet written to the output (see `mask_tokens`).
    kept: (usize, usize),
}

/// The byte range of each token of masked text in `masked[from..]` (tokens are separated
/// by single spaces), into `spans` (cleared first).
pub(crate) fn token_spans(masked: &str, from: usize, spans: &mut Vec<(usize, usize)>) {
    spans.clear();
    let mut start = from;
    for (i, &b) in masked.as_bytes().iter().enumerate().skip(from) {
        if b == b' ' {
            spans.push((start, i));
            start = i + 1;
        }
    }
    if masked.len() > start {
        spans.push((start, masked.len()));
    }
}

/// Byte classes for the token scan.
const SPACE: u8 = 1;
const QUOTE: u8 = 2;
const COLON: u8 = 4;
/// Punctuation other than quotes and `:` (a byte that ends a run).
const PUNCT: u8 = 8;
/// `/ \ @ .`: bytes that can make a run a path, an address or a qualified name.
const SPECIAL: u8 = 16;
const NUMERAL: u8 = 32;
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0usize;
    while c < 256 {
        if !RUN_BYTES[c] {
            t[c] = PUNCT;
        }
        c += 1;
    }
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = NUMERAL;
        d += 1;
    }
    t[b'/' as usize] = SPECIAL;
    t[b'\\' as usize] = SPECIAL;
    t[b'@' as usize] = SPECIAL;
    t[b'.' as usize] = SPECIAL;
    t[b' ' as usize] = SPACE;
    t[b'\t' as usize] = SPACE;
    t[b'\n' as usize] = SPACE;
    t[b'\r' as usize] = SPACE;
    t[0x0c] = SPACE;
    t[b'"' as usize] = QUOTE;
    t[b'\'' as usize] = QUOTE;
    t[b'`' as usize] = QUOTE;
    t[b':' as usize] = COLON;
    t
};

/// Masks the tokens of `source` from where `resume` says (the start, the first time);
/// returns false, having stopped, at the first quote when `quotes_done` is false, with
/// `resume` saying where and in what state.
fn mask_tokens(
    source: &str,
    out: &mut String,
    base: usize,
    quotes_done: bool,
    resume: &mut Resume,
) -> bool {
    let b = source.as_bytes();
    let mut i = resume.at;
    let mut prev: &[u8] = &b[resume.prev.0..resume.prev.1];
    let mut prev_from = resume.prev.0;
    // Whether the last token written is a lone `<*>`.
    let mut prev_lone = resume.prev_lone;
    // Tokens kept as they are and separated by one space in `source` are copied to `out`
    // as one slice when the run of them ends: most of a line is constant words, and one
    // copy per run instead of one per token is a good share of the masking time.
    let (mut kept_from, mut kept_to) = resume.kept;
    let flush = |out: &mut String, from: usize, to: usize| {
        if to > from {
            if out.len() > base {
                out.push(' ');
            }
            out.push_str(&source[from..to]);
        }
    };
    // Masking never lengthens a line by more than a few bytes per token.
    out.reserve(source.len() + 16);
    loop {
        while i < b.len() && CLASS[b[i] as usize] == SPACE {
            i += 1;
        }
        if i == b.len() {
            flush(out, kept_from, kept_to);
            return true;
        }
        let from = i;
        // The union of the classes of the token's bytes, in the tightest loop this
        // module has: one table load and one test per byte (the class without the last
        // byte, which only `word.` and `word,` need, is found for those alone, below).
        let mut class = 0u8;
        let len = b[from..]
            .iter()
            .position(|&c| {
                let k = CLASS[c as usize];
                class |= k;
                k == SPACE
            })
            .unwrap_or(b.len() - from);
        class &= !SPACE;
        i = from + len;
        if class & QUOTE != 0 && !quotes_done {
            *resume = Resume {
                at: from,
                prev: (prev_from, prev_from + prev.len()),
                prev_lone,
                kept: (kept_from, kept_to),
            };
            return false;
        }
        // Decisions are made on bytes; a `&str` is cut only for what is written.
        let tb = &b[from..i];
        let last = tb[len - 1];
        // Cheap guards first: a date word is capitalised and short, a status code is
        // a short number; most tokens are neither.
        let date =
            tb[0].is_ascii_uppercase() && len <= 10 && is_date_word(tb) && dated(prev, &b[i..]);
        let simple = class & (QUOTE | COLON | PUNCT | SPECIAL) == 0 && last != b'-';
        // A simple word followed by sentence punctuation (`failed.`, `user,`, `Info:`):
        // the run rules would mask the word alone and keep the punctuation, which is
        // what this does without a second scan.
        let punctuated = !simple
            && len >= 2
            && matches!(last, b'.' | b',' | b';' | b':')
            && !matches!(tb[len - 2], b'-' | b'.')
            && tb[..len - 1]
                .iter()
                .all(|&c| CLASS[c as usize] & (QUOTE | COLON | PUNCT | SPECIAL) == 0);
        let word = if punctuated { &tb[..len - 1] } else { tb };
        let keep = !date
            && ((class & NUMERAL != 0 && len <= 4 && is_status_code(tb) && announces_status(prev))
                // The common case, one run and nothing that needs a closer look: a
                // word, a number or an id, decided without scanning the token again.
                || ((simple || punctuated) && !is_plain_variable(word, class & NUMERAL != 0)));
        prev = tb;
        prev_from = from;
        if keep {
            if kept_to > kept_from && kept_to + 1 == from && b[kept_to] == b' ' {
                kept_to = i;
            } else {
                flush(out, kept_from, kept_to);
                (kept_from, kept_to) = (from, i);
            }
            prev_lone = false;
            continue;
        }
        flush(out, kept_from, kept_to);
        (kept_from, kept_to) = (0, 0);
        let before = out.len();
        if out.len() > base {
            out.push(' ');
        }
        let start = out.len();
        if date || simple {
            out.push_str(WILDCARD);
        } else if punctuated {
            out.push_str(WILDCARD);
            // ASCII punctuation.
            out.push(char::from(last));
        } else if class & COLON == 0 {
            mask_runs(&source[from..i], out);
        } else {
            mask_token(&source[from..i], out);
        }
        // A list of values ("delete blk_1 blk_2 blk_3") is one variable: consecutive
        // lone `<*>` tokens collapse, so lists of any length share a template.
        let lone =
            out.len() - start == WILDCARD.len() && out.as_bytes()[start..] == *WILDCARD.as_bytes();
        if lone && prev_lone {
            out.truncate(before);
            continue;
        }
        prev_lone = lone;
    }
}

/// English month and weekday names (three letters or in full, optionally followed by
/// `,` or `.`): in `Fri Jun 17 07:07:00 2005` or `17 Jun 2005` they are part of a
/// timestamp, which is a variable in every log.
fn is_date_word(token: &[u8]) -> bool {
    const NAMES: [&str; 38] = [
        "jan",
        "feb",
        "mar",
        "apr",
        "may",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
        "january",
        "february",
        "march",
        "april",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    // Every name starts with one of these three letters: most capitalised words stop
    // here, on one switch over the first three bytes lower-cased (as a number), before
    // the token is trimmed or the list compared.
    let [a, b, c, ..] = *token else {
        return false;
    };
    if !a.is_ascii_uppercase() {
        return false;
    }
    const fn key(p: &[u8; 3]) -> u32 {
        u32::from_le_bytes([p[0], p[1], p[2], 0])
    }
    let prefix = key(&[a | 0x20, b | 0x20, c | 0x20]);
    const JAN: u32 = key(b"jan");
    const FEB: u32 = key(b"feb");
    const MAR: u32 = key(b"mar");
    const APR: u32 = key(b"apr");
    const MAY: u32 = key(b"may");
    const JUN: u32 = key(b"jun");
    const JUL: u32 = key(b"jul");
    const AUG: u32 = key(b"aug");
    const SEP: u32 = key(b"sep");
    const OCT: u32 = key(b"oct");
    const NOV: u32 = key(b"nov");
    const DEC: u32 = key(b"dec");
    const MON: u32 = key(b"mon");
    const TUE: u32 = key(b"tue");
    const WED: u32 = key(b"wed");
    const THU: u32 = key(b"thu");
    const FRI: u32 = key(b"fri");
    const SAT: u32 = key(b"sat");
    const SUN: u32 = key(b"sun");
    if !matches!(
        prefix,
        JAN | FEB
            | MAR
            | APR
            | MAY
            | JUN
            | JUL
            | AUG
            | SEP
            | OCT
            | NOV
            | DEC
            | MON
            | TUE
            | WED
            | THU
            | FRI
            | SAT
            | SUN
    ) {
        return false;
    }
    let trimmed = token
        .iter()
        .rposition(|&c| c != b',' && c != b'.')
        .map_or(0, |p| p + 1);
    let t = &token[..trimmed];
    if !(3..=9).contains(&t.len()) {
        return false;
    }
    NAMES
        .iter()
        .any(|n| n.len() == t.len() && n.as_bytes().eq_ignore_ascii_case(t))
}

/// A month or weekday name is a date only next to a number (`Jun 17`, `17 Jun`) or next
/// to another such name that is (`Fri Jun 17`): `May I` and `March on` stay words.
/// `rest` is the message after the token.
fn dated(prev: &[u8], rest: &[u8]) -> bool {
    let starts_digit = |t: &[u8]| t.first().is_some_and(u8::is_ascii_digit);
    if starts_digit(prev) {
        return true;
    }
    let mut next = rest
        .split(|&c| CLASS[c as usize] == SPACE)
        .filter(|t| !t.is_empty());
    match next.next() {
        Some(n) if starts_digit(n) => true,
        Some(n) if is_date_word(n) => next.next().is_some_and(starts_digit),
        _ => false,
    }
}

/// A three-digit number from 100 to 599: the shape of an HTTP status.
fn is_status_code(token: &[u8]) -> bool {
    let trimmed = token
        .iter()
        .rposition(|&c| !matches!(c, b',' | b'.' | b';' | b')'))
        .map_or(0, |p| p + 1);
    let t = &token[..trimmed];
    t.len() == 3 && t.iter().all(u8::is_ascii_digit) && (b'1'..=b'5').contains(&t[0])
}

/// Words after which a three-digit number is an outcome (`returned 503`, `status: 404`,
/// `HTTP/1.1 500`, `code 429`). An outcome class is exactly what distinguishes two
/// messages for a deploy check (a release that turns 404s into 503s broke something), so
/// it stays part of the template instead of becoming `<*>`.
fn announces_status(prev: &[u8]) -> bool {
    let trimmed = prev
        .iter()
        .rposition(|&c| !matches!(c, b':' | b'=' | b','))
        .map_or(0, |p| p + 1);
    let p = &prev[..trimmed];
    [
        "status",
        "code",
        "returned",
        "response",
        "responded",
        "http",
        "statuscode",
    ]
    .iter()
    .any(|w| p.eq_ignore_ascii_case(w.as_bytes()))
        || p.get(..5).is_some_and(|h| h.eq_ignore_ascii_case(b"http/"))
}

/// A hash of a masked token's shape: its punctuation with every run of word bytes and
/// every `<*>` replaced by one marker. Two tokens can only be the same template position
/// when their shapes agree: `(uid=<*>)` and `LOGIN(uid=<*>)`, or `tty=<*>` and
/// `tty=:<*>`, are different constants, while `alice` and `<*>` may be one variable.
pub(crate) fn shape_hash(token: &str) -> u64 {
    let b = token.as_bytes();
    let mut h = crate::hash::fnv1a(b"");
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(WILDCARD.as_bytes()) || is_run_byte(b[i]) {
            while i < b.len() {
                if b[i..].starts_with(WILDCARD.as_bytes()) {
                    i += WILDCARD.len();
                } else if is_run_byte(b[i]) {
                    i += 1;
                } else {
                    break;
                }
            }
            h = crate::hash::fnv1a_from(h, b"a");
        } else {
            h = crate::hash::fnv1a_from(h, &b[i..=i]);
            // An empty value is still a value: `()` is shaped like `(x)` and a bare
            // `key=` like `key=x`.
            let next = b.get(i + 1).copied();
            let empty_pair = matches!(
                (b[i], next),
                (b'(', Some(b')')) | (b'[', Some(b']')) | (b'{', Some(b'}'))
            );
            let empty_value =
                b[i] == b'=' && matches!(next, None | Some(b',' | b';' | b')' | b']' | b'}'));
            if empty_pair || empty_value {
                h = crate::hash::fnv1a_from(h, b"a");
            }
            i += 1;
        }
    }
    h
}

/// Bytes that may precede an opening quote (besides whitespace and the start).
fn opens_quote_after(b: u8) -> bool {
    matches!(b, b'=' | b':' | b'(' | b'[' | b'{' | b',' | b'<')
}

/// Bytes that may follow a closing quote (besides whitespace and the end).
fn closes_quote_before(b: u8) -> bool {
    matches!(
        b,
        b',' | b';' | b':' | b'.' | b')' | b']' | b'}' | b'>' | b'!' | b'?'
    )
}

/// Replaces quoted values by `"<*>"` (keeping the quote character used).
fn mask_quotes(message: &str, out: &mut String) {
    out.clear();
    let b = message.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        // Only a quote can open a quoted value: go straight to the next one.
        match b[i..]
            .iter()
            .position(|&c| matches!(c, b'"' | b'\'' | b'`'))
        {
            Some(p) => i += p,
            None => break,
        }
        let q = b[i];
        let at_start = i == 0 || b[i - 1].is_ascii_whitespace() || opens_quote_after(b[i - 1]);
        if at_start {
            let close = (i + 1..b.len()).find(|&j| {
                b[j] == q
                    && (j + 1 == b.len()
                        || b[j + 1].is_ascii_whitespace()
                        || closes_quote_before(b[j + 1]))
            });
            if let Some(j) = close {
                // One quoted word (`state 'Active'`) is left to the word rules: it is
                // as often a state or a name as a value. A quoted phrase is free text.
                let phrase = b[i + 1..j].iter().any(u8::is_ascii_whitespace);
                // A quoted value of a key (`tag="AudioMix"`) is a string variable.
                let keyed = i > 0 && b[i - 1] == b'=';
                if j > i + 1 && (phrase || keyed) {
                    // Quotes are ASCII, so these are char boundaries.
                    out.push_str(&message[copied..i]);
                    out.push(q as char);
                    // A quoted request line (`"GET /v2/servers HTTP/1.1"`) keeps its
                    // method: `GET` and `DELETE` are different operations.
                    let method = request_method(&b[i + 1..j]);
                    if method > 0 {
                        out.push_str(&message[i + 1..i + 1 + method]);
                        out.push(' ');
                    }
                    out.push_str(WILDCARD);
                    out.push(q as char);
                    copied = j + 1;
                    i = j + 1;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&message[copied..]);
}

/// The length of an HTTP-style method at the start of a quoted phrase: three to seven
/// upper-case letters, a space, then a path (`/…`) or a URL (`http…`). 0 otherwise.
fn request_method(phrase: &[u8]) -> usize {
    let n = phrase.iter().take_while(|c| c.is_ascii_uppercase()).count();
    let rest = &phrase[n..];
    let target = rest.get(1).is_some_and(|&c| c == b'/' || c == b'h');
    if (3..=7).contains(&n) && rest.first() == Some(&b' ') && target {
        n
    } else {
        0
    }
}

const RUN_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || b >= 0x80
            || matches!(
                b,
                b'_' | b'.' | b'-' | b'/' | b'\\' | b'@' | b'+' | b'%' | b'~' | b'$'
            );
        c += 1;
    }
    t
};

#[inline]
pub(crate) fn is_run_byte(b: u8) -> bool {
    RUN_BYTES[b as usize]
}

/// Trailing punctuation that ends a URL's token but not the URL itself.
fn is_trailing_punct(b: u8) -> bool {
    matches!(
        b,
        b'.' | b',' | b';' | b':' | b')' | b']' | b'}' | b'>' | b'\'' | b'"' | b'!' | b'?'
    )
}

fn mask_token(tok: &str, out: &mut String) {
    let b = tok.as_bytes();
    // Only tokens with a `:` get here. One pass counts the colons (an address has at
    // least two) and finds the first `://` (a URL), instead of one search for each.
    let mut colons = 0usize;
    let mut scheme = None;
    for (p, &c) in b.iter().enumerate() {
        if c == b':' {
            colons += 1;
            if scheme.is_none() && b.get(p + 1..p + 3) == Some(&b"//"[..]) {
                scheme = Some(p);
            }
        }
    }
    if let Some(p) = scheme {
        let mut s = p;
        while s > 0 && (b[s - 1].is_ascii_alphanumeric() || matches!(b[s - 1], b'+' | b'.' | b'-'))
        {
            s -= 1;
        }
        if s < p {
            let mut e = b.len();
            while e > p + 3 && is_trailing_punct(b[e - 1]) {
                e -= 1;
            }
            mask_runs(&tok[..s], out);
            out.push_str(WILDCARD);
            push_piece(out, &tok[e..]);
            return;
        }
    }
    if let Some((lead, end)) = (colons >= 2).then(|| address_with_colons(b)).flatten() {
        push_piece(out, &tok[..lead]);
        out.push_str(WILDCARD);
        mask_runs(&tok[end..], out);
        return;
    }
    mask_runs(tok, out);
}

/// Finds an IPv6 or MAC address at the start of a token (after `[` or `(`): hex groups
/// with at least two colons and a digit, ending at a non-word byte. Returns the address's
/// byte range. Times (`12:30:45`) are left to the run rules (no `::`, no hex letter and
/// fewer than five colons).
fn address_with_colons(b: &[u8]) -> Option<(usize, usize)> {
    let lead = b.iter().take_while(|&&c| c == b'[' || c == b'(').count();
    let mut end = lead;
    let (mut colons, mut digit, mut letter, mut double) = (0, false, false, false);
    while end < b.len() {
        let c = b[end];
        if c == b':' {
            colons += 1;
            if end > lead && b[end - 1] == b':' {
                double = true;
            }
        } else if c.is_ascii_digit() {
            digit = true;
        } else if c.is_ascii_hexdigit() {
            letter = true;
        } else if c == b'.' && double {
            // An IPv4-mapped tail such as ::ffff:10.0.0.1.
        } else {
            break;
        }
        end += 1;
    }
    // A zone index (fe80::1%eth0) belongs to the address.
    if end < b.len() && b[end] == b'%' && (double || colons >= 2) {
        end += 1;
        while end < b.len() && b[end].is_ascii_alphanumeric() {
            end += 1;
        }
    }
    // Trailing dots are sentence punctuation, not address.
    while end > lead && b[end - 1] == b'.' {
        end -= 1;
    }
    let after = end + b[end..].iter().take_while(|&&c| c == b'.').count();
    let boundary = after == b.len() || !is_run_byte(b[after]);
    let shaped = colons >= 2 && digit && (double || letter || colons >= 5);
    (boundary && shaped).then_some((lead, end))
}

/// Appends `s` to `out`. What is copied between the masked runs of a token is mostly
/// nothing or a byte or two of punctuation (`<*>:<*>`, `(uid=<*>)`), for which a call to
/// the library's `memcpy` costs more than the bytes: short pieces are pushed a character
/// at a time.
#[inline]
fn push_piece(out: &mut String, s: &str) {
    match *s.as_bytes() {
        [] => {}
        // One byte of UTF-8 is an ASCII character.
        [c] => out.push(char::from(c)),
        _ => out.push_str(s),
    }
}

/// Masks each run of word bytes in `s` that is a variable, copying the rest.
fn mask_runs(s: &str, out: &mut String) {
    let b = s.as_bytes();
    let mut i = 0;
    // The run before the latest `=`, for `key=value`.
    let mut key: &[u8] = b"";
    // Bytes before this are in `out`: what stays is copied in one slice per masked run,
    // not one per run and punctuation.
    let mut copied = 0;
    while i < b.len() {
        let start = i;
        if !is_run_byte(b[i]) {
            while i < b.len() && !is_run_byte(b[i]) {
                i += 1;
            }
            continue;
        }
        // One table tells whether a byte continues the run and what it tells about it.
        let mut facts = 0u8;
        while i < b.len() {
            let f = FACT[b[i] as usize];
            if f == 0 {
                break;
            }
            facts |= f;
            i += 1;
        }
        // Sentence dots and dashes after a value are not part of it ("port 22.").
        let mut end = i;
        if facts & (DOT | DASH) != 0 {
            while end > start && matches!(b[end - 1], b'.' | b'-') {
                end -= 1;
            }
        }
        let after_equals = start > 0 && b[start - 1] == b'=';
        let value = if after_equals {
            Some(kept_value(key, &b[start..end]))
        } else {
            None
        };
        key = &b[start..end];
        let variable = match value {
            Some(keep) => !keep,
            None => is_variable(&b[start..end], facts),
        };
        if end > start && variable {
            push_piece(out, &s[copied..start]);
            out.push_str(WILDCARD);
            copied = end;
        }
    }
    push_piece(out, &s[copied..]);
}

/// Whether the value of `key=value` stays in the template. Values are variables as a
/// rule (`user=alice`, `pid=42`), with two exceptions that are outcomes, and outcomes
/// are what tell two messages apart: an upper-case word (`status=FAILED`,
/// `result=OK`: enumeration constants are written so in nearly every language), and
/// a word (no digits) after a key that names a state (`state=active`,
/// `status=failed`, `result`, `outcome`, `phase`).
///
/// Identity values stay variables, even when one of them dominates: `user=root` and
/// `user=guest` are one message about two users. Loghub's Linux sample labels that
/// line as three events by user (root, guest, test), and its OpenSSH sample labels the
/// very same PAM line, with `user=root|ftp|git|mysql|sshd|uucp`, as one; the two
/// distributions have the same shape (one value at 95 %, a few rare ones), so no rule
/// about the value or its frequency can tell them apart. Keeping the value would move
/// Linux's grouping accuracy from 0.813 to 0.999 and OpenSSH's from 0.996 to 0.804
/// (docs/signatures.md): a wash on the two systems, and on a deploy check a new
/// signature for every new user name.
fn kept_value(key: &[u8], value: &[u8]) -> bool {
    let word = !value.is_empty() && value.iter().all(|&c| c.is_ascii_alphabetic() || c == b'_');
    if !word {
        return false;
    }
    let upper = value.len() >= 2
        && value.iter().any(u8::is_ascii_uppercase)
        && !value.iter().any(u8::is_ascii_lowercase);
    let state_key = ["status", "state", "result", "outcome", "phase"]
        .iter()
        .any(|k| {
            key.len() >= k.len() && key[key.len() - k.len()..].eq_ignore_ascii_case(k.as_bytes())
        });
    upper || state_key
}

/// A class name (`java.io.IOException`, `org.example.Worker`): two or more lower-case
/// package parts, then a capitalised name. Which exception or class a message names is
/// what it says, so it is kept (and never merged with another, see the miner's names).
/// Bundle ids such as `com.apple.Safari.Update` capitalise inner parts and are values.
pub(crate) fn is_class_name(run: &[u8]) -> bool {
    let Some(dot) = run.iter().rposition(|&c| c == b'.') else {
        return false;
    };
    let (package, last) = (&run[..dot], &run[dot + 1..]);
    package.contains(&b'.')
        && package.first().is_some_and(u8::is_ascii_lowercase)
        && package
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'_')
        && last.first().is_some_and(u8::is_ascii_uppercase)
        && last.iter().any(u8::is_ascii_lowercase)
        && last
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$')
}

/// A name with a small index (`eth0`, `en1`, `sda2`, `ssh2`, `IPV6`): letters then one
/// or two digits. It names a device, an interface or a protocol version, which is part of
/// what a message says; ids and counters have more digits or punctuation.
fn is_indexed_name(run: &[u8]) -> bool {
    let letters = run.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    let digits = run.len() - letters;
    letters >= 2 && (1..=2).contains(&digits) && run[letters..].iter().all(u8::is_ascii_digit)
}

/// Bits of [`FACT`]: what kinds of bytes a run holds, gathered while it is scanned so
/// that [`is_variable`] only looks closer at runs that can match a rule.
const DIGIT: u8 = 1;
const SLASH: u8 = 2;
const BACKSLASH: u8 = 4;
const AT: u8 = 8;
const DOT: u8 = 16;
const DASH: u8 = 32;
/// Set for every byte that belongs to a run ([`RUN_BYTES`]), so that a zero entry ends
/// the run.
const RUN: u8 = 128;
const FACT: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut r = 0usize;
    while r < 256 {
        if RUN_BYTES[r] {
            t[r] = RUN;
        }
        r += 1;
    }
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] |= DIGIT;
        c += 1;
    }
    t[b'/' as usize] |= SLASH;
    t[b'\\' as usize] |= BACKSLASH;
    t[b'@' as usize] |= AT;
    t[b'.' as usize] |= DOT;
    t[b'-' as usize] |= DASH;
    t
};

/// [`is_variable`] for a run without `/ \\ @ .` (a simple token), whose only fact is
/// whether it has a digit: what most tokens are, so the rules that cannot apply are not
/// asked.
#[inline]
fn is_plain_variable(run: &[u8], digit: bool) -> bool {
    if digit {
        return !is_indexed_name(run);
    }
    match run.len() {
        4 | 5 => is_flag_literal(run),
        0..=15 => false,
        _ => run.iter().all(u8::is_ascii_hexdigit),
    }
}

/// `true`, `false` or `null` in any case. Setting bit 5 of a byte lower-cases a letter,
/// and the only bytes it maps onto a lower-case letter are that letter in either case,
/// so one compare of the folded word is `eq_ignore_ascii_case` without a loop.
#[inline]
fn is_flag_literal(run: &[u8]) -> bool {
    const FOLD: u32 = 0x2020_2020;
    match *run {
        [a, b, c, d] => {
            let w = u32::from_le_bytes([a, b, c, d]) | FOLD;
            w == u32::from_le_bytes(*b"true") || w == u32::from_le_bytes(*b"null")
        }
        [a, b, c, d, e] => {
            u32::from_le_bytes([a, b, c, d]) | FOLD == u32::from_le_bytes(*b"fals")
                && e | 0x20 == b'e'
        }
        _ => false,
    }
}

fn is_variable(run: &[u8], facts: u8) -> bool {
    if facts & DIGIT != 0 {
        return !is_indexed_name(run);
    }
    if facts & (SLASH | BACKSLASH) != 0 {
        let slashes = run.iter().filter(|&&c| c == b'/').count();
        let path = (run[0] == b'/' && slashes >= 2)
            || run.starts_with(b"./")
            || run.starts_with(b"../")
            || run.starts_with(b"~/")
            || facts & BACKSLASH != 0;
        if path {
            return true;
        }
    }
    if facts & AT != 0 {
        if let Some(at) = run.iter().position(|&c| c == b'@') {
            if at > 0 && run[at + 1..].contains(&b'.') && !run.ends_with(b".") {
                return true;
            }
        }
    }
    // Boolean and null literals are what a program prints for a flag's value
    // (`overlap:true`, `ret:false`, `callback for null`).
    if is_flag_literal(run) {
        return true;
    }
    if facts & DOT == 0 {
        return run.len() >= 16 && run.iter().all(u8::is_ascii_hexdigit);
    }
    // A qualified name of three or more dotted parts (`com.apple.icloud.heartbeat`,
    // `org.example.Worker`, `host.example.com`) is a package, bundle, class or host:
    // the thing that varies between events of one message. One that ends in an
    // upper-case constant (`android.intent.action.SCREEN_ON`) names that constant in its
    // namespace, and different constants are different messages.
    let inner_dots = run
        .windows(3)
        .filter(|w| w[1] == b'.' && w[0] != b'.' && w[2] != b'.')
        .count();
    if inner_dots >= 2 {
        let last = run.rsplit(|&c| c == b'.').next().unwrap_or(b"");
        let constant = last.len() >= 2
            && last.iter().any(u8::is_ascii_uppercase)
            && !last.iter().any(u8::is_ascii_lowercase);
        return !(constant || is_class_name(run));
    }
    // A file name (`chrome.exe`, `app.log`, `wcp.dll`): a name, one dot, a short
    // lower-case extension. It names what was opened, loaded or run, which varies
    // between events of one message (`<*> - <*> open through proxy <*>`).
    if inner_dots == 1 {
        if let Some(dot) = run.iter().rposition(|&c| c == b'.') {
            let ext = &run[dot + 1..];
            let file =
                dot >= 1 && (1..=4).contains(&ext.len()) && ext.iter().all(u8::is_ascii_lowercase);
            if file {
                return true;
            }
        }
    }
    run.len() >= 16 && run.iter().all(u8::is_ascii_hexdigit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(s: &str) -> String {
        let (mut out, mut spans, mut scratch) = (String::new(), Vec::new(), String::new());
        mask_message(s, &mut out, &mut scratch);
        token_spans(&out, 0, &mut spans);
        let words: Vec<&str> = out.split_ascii_whitespace().collect();
        let spanned: Vec<&str> = spans.iter().map(|&(a, b)| &out[a..b]).collect();
        assert_eq!(spanned, words);
        out
    }

    #[test]
    fn numbers_and_hex_ids() {
        assert_eq!(mask("retry 3 of 10"), "retry <*> of <*>");
        assert_eq!(mask("value -12.5e3 ok"), "value <*> ok");
        assert_eq!(mask("ptr 0x7ffde4a2 freed"), "ptr <*> freed");
        assert_eq!(mask("commit 8f91ab22c0"), "commit <*>");
        assert_eq!(mask("trace abcdefabcdefabcd"), "trace <*>");
        assert_eq!(mask("a decade ago"), "a decade ago");
    }

    #[test]
    fn uuids_and_block_ids() {
        assert_eq!(
            mask("request 8f91ab22-1c2d-4e5f-8a9b-0c1d2e3f4a5b failed"),
            "request <*> failed"
        );
        assert_eq!(mask("block blk_-6952295868487656571"), "block <*>");
    }

    #[test]
    fn ipv4_ipv6_mac_and_ports() {
        assert_eq!(mask("from 10.0.3.17:5432"), "from <*>:<*>");
        assert_eq!(mask("from 10.0.3.17 port 22"), "from <*> port <*>");
        assert_eq!(mask("peer [2001:db8::1]:443 up"), "peer [<*>]:<*> up");
        assert_eq!(mask("peer fe80::1ff:fe23:4567:890a down"), "peer <*> down");
        assert_eq!(mask("mac 00:1a:2b:3c:4d:5e"), "mac <*>");
        assert_eq!(mask("link fe80::1%eth0."), "link <*>.");
        // Times keep their shape.
        assert_eq!(mask("at 12:30:45"), "at <*>:<*>:<*>");
        // C++ paths are not addresses.
        assert_eq!(mask("in std::vector"), "in std::vector");
    }

    #[test]
    fn paths_and_urls() {
        assert_eq!(mask("open /var/log/app.log failed"), "open <*> failed");
        assert_eq!(mask("open ./conf/x.toml"), "open <*>");
        assert_eq!(mask("load C:\\Windows\\x.dll"), "load C:<*>");
        assert_eq!(mask("root /"), "root /");
        assert_eq!(
            mask("GET https://api.example.com/v1/users?id=7, done"),
            "GET <*>, done"
        );
        assert_eq!(mask("(see http://x.org/a)."), "(see <*>).");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(
            mask("took 30ms then 1.5s then 2m30s"),
            "took <*> then <*> then <*>"
        );
        assert_eq!(mask("wrote 64KB"), "wrote <*>");
    }

    #[test]
    fn emails() {
        assert_eq!(
            mask("mail to alice@example.com bounced"),
            "mail to <*> bounced"
        );
        assert_eq!(mask("at @home"), "at @home");
    }

    #[test]
    fn quoted_values() {
        assert_eq!(
            mask("user \"John Smith\" not found"),
            "user \"<*>\" not found"
        );
        assert_eq!(mask("key='a b c', next"), "key='<*>', next");
        assert_eq!(mask("can't open `cfg file`"), "can't open `<*>`");
        assert_eq!(mask("empty '' stays"), "empty '' stays");
        assert_eq!(
            mask("10.1.1.1 \"GET /v2/a/servers/detail HTTP/1.1\" status: 200 len: 1893"),
            "<*> \"GET <*>\" status: 200 len: <*>"
        );
        assert_eq!(
            mask("\"DELETE /v2/a/servers/9 HTTP/1.1\" status: 204"),
            "\"DELETE <*>\" status: 204"
        );
        assert_eq!(mask("said \"OK then\""), "said \"<*>\"");
        assert_eq!(mask("it's Bob's"), "it's Bob's");
    }

    #[test]
    fn key_value_values() {
        assert_eq!(
            mask("user=alice state=active ruser= rhost=10.0.0.1"),
            "user=<*> state=active ruser= rhost=<*>"
        );
        assert_eq!(mask("session (uid=0)"), "session (uid=<*>)");
        // Outcomes stay: upper-case constants and words after a state-like key.
        assert_eq!(mask("job status=FAILED"), "job status=FAILED");
        assert_eq!(mask("job status=OK"), "job status=OK");
        assert_eq!(
            mask("exitStatus=failed code=E_IO"),
            "exitStatus=failed code=E_IO"
        );
        assert_eq!(mask("name=alice mode=Fast"), "name=<*> mode=<*>");
        assert_eq!(mask("status=7"), "status=<*>");
        // A quoted value of a key is a string variable, even one word.
        assert_eq!(mask("tag=\"AudioMix\", x"), "tag=\"<*>\", x");
    }

    #[test]
    fn http_statuses_stay_after_words_that_announce_them() {
        assert_eq!(mask("GET /api/v1 returned 503"), "GET <*> returned 503");
        assert_eq!(mask("GET /api/v1 returned 404"), "GET <*> returned 404");
        assert_eq!(mask("status: 500, took 12ms"), "status: 500, took <*>");
        assert_eq!(
            mask("\"GET /\" HTTP/1.1 200 512"),
            "\"GET <*>\" <*> 200 <*>"
        );
        // Elsewhere a three-digit number is a quantity.
        assert_eq!(mask("sent 503 bytes"), "sent <*> bytes");
        assert_eq!(mask("returned 12"), "returned <*>");
    }

    #[test]
    fn dates_written_with_names_are_one_variable() {
        assert_eq!(
            mask("connection at Fri Jun 17 07:07:00 2005"),
            "connection at <*> <*>:<*>:<*> <*>"
        );
        assert_eq!(mask("built 17 Jun 2005"), "built <*>");
        assert_eq!(mask("May I help"), "May I help");
        assert_eq!(mask("March on"), "March on");
    }

    #[test]
    fn names_that_distinguish_messages_are_kept() {
        // Small indexes name interfaces, devices and protocol versions.
        assert_eq!(mask("Link Up on en0"), "Link Up on en0");
        assert_eq!(mask("MDNS: IPV6 Addr"), "MDNS: IPV6 Addr");
        assert_eq!(mask("worker 7 on node12345"), "worker <*> on <*>");
        // One quoted word is left to the word rules.
        assert_eq!(mask("in state 'Active'"), "in state 'Active'");
        // Booleans and null are values.
        assert_eq!(
            mask("overlap:true ret:false for null"),
            "overlap:<*> ret:<*> for <*>"
        );
        // Qualified names are values, unless they end in a constant.
        assert_eq!(mask("com.apple.cache.daily: run"), "<*>: run");
        assert_eq!(mask("com.apple.Safari.Update: run"), "<*>: run");
        // Classes are what an exception message says.
        assert_eq!(
            mask("thrown java.lang.NullPointerException at x"),
            "thrown java.lang.NullPointerException at x"
        );
        assert_eq!(
            mask("action: android.intent.action.SCREEN_ON"),
            "action: android.intent.action.SCREEN_ON"
        );
        // File names are values; a dotted word with a capitalised tail is not a file.
        assert_eq!(mask("open chrome.exe now"), "open <*> now");
        assert_eq!(mask("see Foo.Bar"), "see Foo.Bar");
    }

    #[test]
    fn punctuation_and_sentence_dots_are_kept() {
        assert_eq!(mask("sshd[24200]: done."), "sshd[<*>]: done.");
        assert_eq!(mask("closed port 22."), "closed port <*>.");
        assert_eq!(mask("BLOCK* ask"), "BLOCK* ask");
        assert_eq!(mask("  spaced\tout  "), "spaced out");
    }

    #[test]
    fn value_lists_collapse() {
        assert_eq!(mask("delete 1 2 3 4 now"), "delete <*> now");
        assert_eq!(mask("delete 1 x 3"), "delete <*> x <*>");
    }

    #[test]
    fn shapes_tell_structures_apart() {
        assert_eq!(shape_hash("alice"), shape_hash("<*>"));
        assert_eq!(shape_hash("host-1.example.com"), shape_hash("x"));
        assert_ne!(shape_hash("(uid=<*>)"), shape_hash("LOGIN(uid=<*>)"));
        assert_ne!(shape_hash("tty=<*>"), shape_hash("tty=:<*>"));
        assert_eq!(shape_hash("[<*>]:"), shape_hash("[a]:"));
        assert_eq!(shape_hash("()"), shape_hash("(host.example.com)"));
        assert_eq!(shape_hash("rhost="), shape_hash("rhost=<*>"));
    }
}
