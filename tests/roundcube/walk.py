"""Roundcube as a user drives it, in headless Chromium (Selenium + Debian's chromedriver).

Usage: walk.py URL USER PASSWORD

Logs in through the login form, waits for the message list, then through the list-options
dialog (the elastic skin's "Options" button: sort column, order, list/threads mode) sorts by
date (descending) and by subject (ascending), pages to the last page with the page navigation's
"last" button, and switches to the thread view when the dialog offers it (Roundcube offers it
only when the server advertises THREAD). Every wait is bounded.

Prints one line per step on stdout, `step=NAME` and tab-separated `key=value` fields: what the
list shows (the first and last row's subject, how many rows are thread roots and how many are
nested under one, the roots' subjects), Roundcube's own view of the list (`rcmail.env`: sort
column and order, page, page count, message count, threading, whether the thread view is
offered) and the seconds the step took. The Rust test (tests/roundcube.rs) makes the
assertions; this script only fails when a wait runs out, after printing a `step=error` line
with what the page showed.
"""

import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

URL, USER, PASSWORD = sys.argv[1], sys.argv[2], sys.argv[3]
# One bound for every wait: a 10,000-message folder without SORT makes Roundcube fetch the
# sort field of every message, which takes a few seconds on a loaded machine.
WAIT = 60

# The list as the user sees it, and Roundcube's state; `stale` counts rows marked before an
# action (see `mark`), so a wait can tell the new list from the old one.
STATE_JS = """
const env = rcmail.env || {};
const rows = Array.from(document.querySelectorAll('#messagelist tbody tr.message'));
return {
  busy: !!rcmail.busy,
  task: env.task || null,
  sort_col: env.sort_col, sort_order: env.sort_order,
  page: env.current_page, pages: env.pagecount, messagecount: env.messagecount,
  threading: !!env.threading, threads_offered: !!env.threads,
  stale: rows.filter(r => r.dataset.stale === '1').length,
  count: rows.length,
  rows: rows.map(r => {
    const s = r.querySelector('td.subject span.subject a, td.subject a');
    // Roundcube's own record of the row (list.js): thread depth, whether it has replies.
    const m = (rcmail.message_list && rcmail.message_list.rows[r.uid]) || {};
    return {
      uid: r.uid || null,
      subject: s ? (s.getAttribute('title') || s.textContent).trim() : null,
      // A thread root shows the expand/collapse toggle (app.js `rcmexpando<id>`).
      root: !!r.querySelector('[id^="rcmexpando"]') && !m.depth && !!m.has_children,
      depth: m.depth || 0,
      hidden: r.style.display === 'none',
    };
  }),
};
"""

MARK_JS = """
document.querySelectorAll('#messagelist tbody tr').forEach(r => r.dataset.stale = '1');
"""


def out(step, **fields):
    """One line: `step=NAME` then `key=value` fields, tab-separated (values hold no tabs)."""
    pairs = [("step", step)] + list(fields.items())
    print("\t".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"
                    for k, v in pairs), flush=True)


def state(d):
    try:
        return d.execute_script(STATE_JS)
    except Exception:  # page between loads: no rcmail yet
        return None


def wait_list(d, what, extra=lambda s: True):
    """Waits until the list shows fresh rows and Roundcube is idle; returns the state."""
    last = {}

    def ready(_):
        s = state(d)
        if s is None:
            return False
        last["s"] = s
        return (not s["busy"]) and s["count"] > 0 and s["stale"] == 0 and extra(s)

    try:
        WebDriverWait(d, WAIT, poll_frequency=0.05).until(ready)
    except Exception:
        s = last.get("s") or {}
        out("error", waiting_for=what, state={k: v for k, v in s.items() if k != "rows"},
            rows=(s.get("rows") or [])[:5], url=d.current_url)
        raise
    return last["s"]


def report(step, s, started=None, **more):
    rows = s["rows"]
    fields = {k: v for k, v in s.items() if k not in ("rows", "busy", "stale")}
    if started is not None:
        fields["seconds"] = round(time.monotonic() - started, 3)
    out(step, **fields, first=rows[0]["subject"], last=rows[-1]["subject"],
        roots=sum(r["root"] for r in rows), nested=sum(r["depth"] > 0 for r in rows),
        root_subjects="|".join(r["subject"] or "" for r in rows if r["root"]), **more)


def list_options(d, col=None, order=None, mode=None):
    """The elastic skin's list-options dialog: choose, then its Save button."""
    d.execute_script(MARK_JS)
    d.find_element(By.ID, "listmenulink").click()
    dialog = WebDriverWait(d, WAIT).until(
        lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, ".ui-dialog")
                        if e.is_displayed()), None))
    if col is not None:
        Select(dialog.find_element(By.NAME, "sort_col")).select_by_value(col)
    if order is not None:
        Select(dialog.find_element(By.NAME, "sort_ord")).select_by_value(order)
    if mode is not None:
        Select(dialog.find_element(By.NAME, "mode")).select_by_value(mode)
    dialog.find_element(By.CSS_SELECTOR, ".ui-dialog-buttonpane button.mainaction").click()


def main():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        d.set_page_load_timeout(WAIT)
        d.get(URL)
        WebDriverWait(d, WAIT).until(lambda d: d.find_elements(By.ID, "rcmloginuser"))
        d.find_element(By.ID, "rcmloginuser").send_keys(USER)
        d.find_element(By.ID, "rcmloginpwd").send_keys(PASSWORD)
        started = time.monotonic()
        d.find_element(By.ID, "rcmloginsubmit").click()
        s = wait_list(d, "the message list after login", lambda s: s["task"] == "mail")
        report("login", s, started)

        started = time.monotonic()
        list_options(d, col="date", order="DESC", mode="list" if s["threads_offered"] else None)
        s = wait_list(d, "the list sorted by date",
                      lambda s: s["sort_col"] == "date" and s["sort_order"] == "DESC")
        report("date", s, started)

        started = time.monotonic()
        list_options(d, col="subject", order="ASC")
        s = wait_list(d, "the list sorted by subject",
                      lambda s: s["sort_col"] == "subject" and s["sort_order"] == "ASC")
        report("subject", s, started)

        started = time.monotonic()
        d.execute_script(MARK_JS)
        d.find_element(By.CSS_SELECTOR, ".pagenav a.lastpage").click()
        s = wait_list(d, "the last page", lambda s: s["pages"] and s["page"] == s["pages"])
        report("lastpage", s, started)

        if s["threads_offered"]:
            started = time.monotonic()
            list_options(d, col="date", order="DESC", mode="threads")
            s = wait_list(d, "the thread view", lambda s: s["threading"])
            report("threads", s, started)
        else:
            out("threads", offered=False)
        out("done")
    finally:
        d.quit()


if __name__ == "__main__":
    main()
