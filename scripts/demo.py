#!/usr/bin/env python3
"""A demo campaign a newcomer can work at once from the ImpactDialer app (/app/).

scripts/run.sh runs this beside impactd on first start. Everything goes through the public API
with the development credentials (data/dev-credentials.env), exactly as a customer would set a
campaign up: a script (a text, two questions, a note, a warm and a cold transfer), a Power
campaign worked by people only (simulated_callers 0) on the simulated carrier, 500 numbers with
leads, and one caller. It is done once: a campaign named "Demo canvass" already there means the
demo exists, and the login is printed again.

The numbers are fictional (555-01xx is reserved for fiction in every NANP area code) and the
simulated carrier answers them. Calling hours hold in each number's own zone (08:00-21:00, TCPA),
so the area codes span the NANP from Puerto Rico to Guam: at almost any hour of the day some of
them may be called (the one gap, about 11:00-12:00 UTC, is when it is night in all of them).
"""
import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

CAMPAIGN = "Demo canvass"
USERNAME = "demo"
PASSWORD = "demo-caller-1"
AREA_CODES = ["787", "212", "312", "303", "415", "907", "808", "684", "671"]


def credentials(data_dir):
    values = {}
    with open(os.path.join(data_dir, "dev-credentials.env"), encoding="utf-8") as f:
        for line in f:
            name, _, value = line.strip().partition("=")
            values[name] = value
    return values["IMPACT_API_KEY"], values["IMPACT_API_AUTH"]


class Api:
    def __init__(self, base, key, auth):
        self.base = base
        token = base64.b64encode(f"{key}:{auth}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def call(self, method, path, body=None, content_type="application/json"):
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")


def wait_healthy(base, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/v1/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise SystemExit("demo: impactd did not become healthy")


def existing_campaign(api):
    page = api.call("GET", "/v1/campaigns?per_page=100")
    for item in page.get("items", []):
        if item.get("name") == CAMPAIGN:
            return item
    return None


def make_script(api):
    try:
        api.call("POST", "/v1/custom_fields", {"name": "ward"})
    except urllib.error.HTTPError as error:
        if error.code != 422:  # 422: it exists already, from an earlier attempt
            raise
    script = api.call("POST", "/v1/scripts", {
        "name": "Demo canvass script", "selected_fields": ["first_name", "last_name", "city", "ward"]})
    sid = script["id"]
    api.call("POST", f"/v1/scripts/{sid}/script_texts", {"content": (
        "Hi, is this **{first_name}**? I'm calling with the *Riverside Library* campaign.\n\n"
        "- We want to keep the branch open on Sundays.\n- It takes one minute.")})
    vote = api.call("POST", f"/v1/scripts/{sid}/questions", {"text": "Will you support Sunday opening?"})
    for value, keypad, retry in (("Yes", 1, False), ("No", 2, False), ("Undecided: call back", 3, True)):
        api.call("POST", f"/v1/scripts/{sid}/questions/{vote['id']}/possible_responses",
                 {"value": value, "keypad": keypad, "retry": retry})
    volunteer = api.call("POST", f"/v1/scripts/{sid}/questions", {"text": "Would you volunteer a Sunday shift?"})
    for value, keypad in (("Yes", 1), ("No", 2)):
        api.call("POST", f"/v1/scripts/{sid}/questions/{volunteer['id']}/possible_responses",
                 {"value": value, "keypad": keypad})
    api.call("POST", f"/v1/scripts/{sid}/notes", {"label": "Notes for the volunteer team"})
    api.call("POST", f"/v1/scripts/{sid}/transfers",
             {"label": "Branch manager (warm)", "phone_number": "+12125550100", "transfer_type": "warm"})
    api.call("POST", f"/v1/scripts/{sid}/transfers",
             {"label": "Volunteer line (cold)", "phone_number": "+12125550101", "transfer_type": "cold"})
    return sid


def make_campaign(api, script_id):
    campaign = api.call("POST", "/v1/campaigns", {
        "name": CAMPAIGN, "dialer_type": "Power", "from": "(212) 555-0142", "script_id": script_id,
        "simulated_callers": 0, "recycle_rate_hours": 1})
    lst = api.call("POST", "/v1/lists", {
        "name": "Demo voters", "campaign_id": campaign["id"],
        "column_map": {"phone": "phone", "first_name": "first_name", "last_name": "last_name", "city": "city",
                       "ward": "ward"}})
    rows = ["phone,first_name,last_name,city,ward"]
    first_names = ["Ann", "Ben", "Cleo", "Dev", "Eve", "Femi", "Gus", "Hana", "Ivo", "June"]
    last_names = ["Lee", "Okafor", "Novak", "Garcia", "Haddad", "Kim", "Silva", "Moreau", "Ito", "Walsh"]
    cities = ["Riverside", "Lakeview", "Hillcrest", "Oakdale"]
    for i in range(500):
        area = AREA_CODES[i % len(AREA_CODES)]
        rows.append(f"+1{area}55501{i // len(AREA_CODES) % 100:02d},{first_names[i % 10]},"
                    f"{last_names[i // 10 % 10]},{cities[i % 4]},{1 + i % 7}")
    api.call("POST", f"/v1/lists/{lst['id']}/upload?part=1", "\n".join(rows).encode() + b"\n", "text/csv")
    api.call("POST", f"/v1/lists/{lst['id']}/import")
    for _ in range(240):
        if api.call("GET", f"/v1/lists/{lst['id']}")["status"] in ("completed", "failed"):
            break
        time.sleep(0.5)
    api.call("POST", "/v1/callers", {"name": "Demo caller", "username": USERNAME, "password": PASSWORD,
                                     "campaign_id": campaign["id"]})
    api.call("POST", f"/v1/campaigns/{campaign['id']}/start")
    return campaign


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--listen", default=os.environ.get("IMPACT_LISTEN", "127.0.0.1:8080"))
    args, _ = parser.parse_known_args()
    base = f"http://{args.listen}"
    wait_healthy(base)
    api = Api(base, *credentials(args.data_dir))
    account = api.call("GET", "/v1")["account"]["id"]
    campaign = existing_campaign(api)
    if campaign is None:
        campaign = make_campaign(api, make_script(api))
        print(f"demo: created the campaign \"{CAMPAIGN}\" (Power, 500 numbers, simulated carrier)", flush=True)
    print(f"demo: open {base}/app/ and log in with account {account}, username {USERNAME}, "
          f"password {PASSWORD}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except (urllib.error.URLError, OSError, KeyError) as error:
        print(f"demo: not set up ({error})", file=sys.stderr)
        sys.exit(1)
