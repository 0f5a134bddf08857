//! Apache's member `status=` strings (`+H`, `+H+I`, `D`) as `lb::flags` bits.

use modproxy_api::lb::flags;

const HELP: &str = "use D (disabled), S (stopped), I (ignore errors), H (hot standby), \
                    R (spare), N (drain) or E (in error), e.g. \"+H\" or \"+H+I\"";

/// Parses a status string. As in Apache, the `+` before each letter is
/// optional and letters are case-insensitive; `-` (clear a flag) means
/// nothing in a config file, where every flag starts clear.
pub fn parse_status(s: &str) -> Result<u32, String> {
    let mut bits = 0;
    for c in s.trim().chars() {
        bits |= match c.to_ascii_uppercase() {
            '+' => continue,
            '-' => return Err(format!("`{s}`: `-` clears a flag, and in a config file none is set: list only the flags to set")),
            'D' => flags::DISABLED,
            'S' => flags::STOPPED,
            'I' => flags::IGNORE_ERRORS,
            'H' => flags::STANDBY,
            'R' => flags::SPARE,
            'N' => flags::DRAINING,
            'E' => flags::IN_ERROR,
            _ => return Err(format!("`{s}`: unknown flag `{c}`: {HELP}")),
        };
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modproxy_api::lb::flags::*;

    #[test]
    fn single_and_combined_flags() {
        assert_eq!(parse_status(""), Ok(0));
        assert_eq!(parse_status("+H"), Ok(STANDBY));
        assert_eq!(parse_status("+H+I"), Ok(STANDBY | IGNORE_ERRORS));
        assert_eq!(parse_status("dn"), Ok(DISABLED | DRAINING));
        assert_eq!(parse_status(" +S+R+E "), Ok(STOPPED | SPARE | IN_ERROR));
    }

    #[test]
    fn unknown_letters_and_minus_are_refused_with_advice() {
        let e = parse_status("+X").unwrap_err();
        assert!(
            e.contains("unknown flag `X`") && e.contains("hot standby"),
            "{e}"
        );
        assert!(parse_status("-D")
            .unwrap_err()
            .contains("list only the flags to set"));
        assert!(
            parse_status("+C").is_err(),
            "health-check flag is not supported"
        );
    }
}
