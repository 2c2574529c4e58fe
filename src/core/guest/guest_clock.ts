/**
 * Setting a resumed guest's clock over SSH, with the guest contract's sudo.
 *
 * The host sends its time once the guest says `ready`, and waits for
 * `set`. Under TCG the sudo on that path costs a resume about 0.3 s (sudo,
 * a root shell and `date` are three program starts), so the suspend before
 * arms it in advance: its login starts, with sudo, a root helper that
 * waits on a FIFO in /run for a time to set (once per boot; it lives until
 * the guest reboots). The resume's login then only hands the time over.
 * Where the helper is missing (a suspend that could not arm it, a warm
 * image taken without it, a helper that died), the login takes the sudo
 * path itself; a helper that does not answer within 3 s (of the guest's
 * old clock, plus the jump it makes) sends it there too, with a second
 * `ready`, for which the host sends its time again.
 *
 * The guest is root in itself: nothing here protects the guest from
 * itself, and the host trusts none of it beyond reading `ready` and `set`.
 *
 * @module
 */
import { shellQuote } from "../store/shell_quote.ts";

/** Where the helper's FIFOs (`time`, `done`) and its PID live in the guest. */
export const guestClockDir = "/run/virtdev-clock";

const _d = guestClockDir;

// Root's side, started by sudo: a loop that sets each time it reads, and says how it went.
const _armScript = `d=${_d}
rm -rf $d && mkdir -m 0755 $d && mkfifo -m 0600 $d/time $d/done && chown "$SUDO_UID" $d/time $d/done || exit 1
(
  trap '' HUP
  while read -r t < $d/time; do
    case $t in
    '' | *[!0-9.]*) echo failed ;;
    *) if date -u -s "@$t" > /dev/null; then echo set; else echo failed; fi ;;
    esac > $d/done
  done
) < /dev/null > /dev/null 2>&1 &
echo $! > $d/pid
`;

/** Whether the helper of this boot is alive, in the login's shell. */
const _helperAlive = `{ read -r p < ${_d}/pid && [ -d "/proc/$p" ] && [ -p ${_d}/time ]; } 2>/dev/null`;

/**
 * The remote command that arms the hand-off for the next resume (a no-op
 * while this boot's helper lives). Its output is for nobody; it fails
 * quietly where sudo is missing, and the resume then says so.
 */
export const armGuestClockCommand: string = `${_helperAlive} || sudo -n sh -c ${
  shellQuote(_armScript)
} > /dev/null 2>&1`;

/**
 * The resume's login: `ready`, a time read, the clock set, then `set` when
 * the armed helper set it or `set-by-sudo` when sudo did; then the session
 * is held (its input ends it), so that the connection can be shared. The
 * fast path needs bash (`read -t`, `EPOCHSECONDS`), the contract's shell.
 *
 * bash's `read -t` measures by the wall clock, which the helper moves on by
 * however long the suspend lasted: a plain 3 s would expire the moment the
 * clock is set, with `set` half read. The wait allows for that jump.
 */
export const setGuestClockCommand: string = `r=
if [ -n "$BASH_VERSION" ] && ${_helperAlive}; then
  echo ready; read -r t; echo "$t" 1<> ${_d}/time
  w=$(( \${t%.*} - \${EPOCHSECONDS:-\${t%.*}} )); [ "$w" -gt 0 ] || w=0
  read -r -t $((w + 3)) r 0<> ${_d}/done
fi
if [ "$r" = set ]; then echo set; else
  sudo -n sh -c 'echo ready; read t; exec date -u -s "@$t" > /dev/null' || exit 1; echo set-by-sudo
fi
exec cat > /dev/null`;
