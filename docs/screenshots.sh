#!/usr/bin/env bash
# Regenerate docs/sign-off-go.png, docs/sign-off-no-go.png and docs/history.png: five demo
# sign-offs (two NO-GO, by app and receiver faults) into one report directory, photographed
# by headless Chromium at 1400 px wide. Run from the checkout, inside its virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
run() { pytest -m post_deploy --postdeploy-target demo --postdeploy-release 2024.03.01 --postdeploy-ticket CHG-1234 -p no:cacheprovider -q \
            --postdeploy-report-dir="$reports" "$@" | tail -1; sleep 1; }
run
POSTDEPLOY_APP_FAULT=log_errors POSTDEPLOY_RECEIVER_FAULT=slack_invalid_token run --postdeploy-send-test-alert || true
run
POSTDEPLOY_APP_FAULT=item_cross_org run || true
run --postdeploy-send-test-alert
folders=("$reports"/demo-*)
shot() { chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$reports/.chromium" \
             --window-size="$1" --screenshot="$2" "file://$3" 2>/dev/null; }
shot 1400,900 docs/sign-off-go.png "${folders[4]}/sign-off.html"
shot 1400,900 docs/sign-off-no-go.png "${folders[1]}/sign-off.html"
shot 1400,1100 docs/history.png "$reports/history.html"
cp "${folders[1]}/sign-off.md" docs/sign-off-no-go.md
