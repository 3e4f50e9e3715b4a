from __future__ import annotations

import pytest

from sessionguard.platform import (
    MAX_HEADER,
    PLATFORMS,
    Platform,
    classify,
    clip,
    device_label,
)

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
CHROME_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
CHROME_OS = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
EDGE_WIN = CHROME_WIN + " Edg/131.0.2903.86"
EDGE_MAC = CHROME_MAC + " Edg/131.0.2903.86"
FIREFOX_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0"
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
FIREFOX_UBUNTU = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.6 Safari/605.1.15"
)
OPERA_WIN = CHROME_WIN + " OPR/115.0.0.0"
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
)
IPHONE_CHROME = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1"
)
IPHONE_FIREFOX = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15"
)
IPHONE_WEBVIEW = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
IPAD_SAFARI = (
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
)
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.6778.104 Mobile Safari/537.36"
)
ANDROID_REDUCED = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
ANDROID_FIREFOX = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"
ANDROID_WEBVIEW = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP1A; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36"
)
SAMSUNG = (
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 "
    "(KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
)
WINDOWS_PHONE = (
    "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 "
    "Edge/15.15063"
)
KINDLE = (
    "Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; KFTT Build/IML74K) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Silk/3.68 like Chrome/39.0.2171.93 "
    "Safari/537.36"
)
OKHTTP = "okhttp/4.12.0"
DALVIK = "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP1A.240505.005)"
CFNETWORK = "MyApp/1.2.3 CFNetwork/1496.0.7 Darwin/23.5.0"
EXPO = "Expo/2.32.17 CFNetwork/1568.100.1 Darwin/24.0.0"
DART = "Dart/3.5 (dart:io)"
ALAMOFIRE = "Slack/24.06.10 (com.tinyspeck.chatlyio; build:24061010; iOS 17.5.1) Alamofire/5.9.1"
DISCORD_ANDROID = "Discord-Android/245013;RNA"
MAC_CFNETWORK = "Zoom/6.0.2 CFNetwork/1494.0.7 Darwin/23.4.0 (x86_64)"
ELECTRON = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) MyApp/1.0.0 Chrome/120.0.6099.291 Electron/28.3.3 "
    "Safari/537.36"
)
SLACK_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Slack/4.41.105 Chrome/130.0.6723.152 Electron/33.2.0 "
    "Safari/537.36 AppName/desktop"
)
SLACK_SSB = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/61.0.3163.100 Safari/537.36 Slack_SSB/3.0.5"
)
DISCORD = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) discord/1.0.9172 Chrome/128.0.6613.186 Electron/32.2.7 "
    "Safari/537.36"
)
TEAMS = EDGE_WIN + " Teams/24295.605.3225.8804/49"
OBSIDIAN_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "obsidian/1.7.7 Chrome/128.0.6613.186 Electron/32.2.5 Safari/537.36"
)
TAURI = SAFARI_MAC + " Tauri/2.1"
NWJS = CHROME_WIN + " nwjs/0.93.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 "
    "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
CURL = "curl/8.5.0"
REQUESTS = "python-requests/2.32.3"
GARBAGE = "\x00\n\r\t\x1b[31m junk \x7f"
HUGE = "Mozilla/5.0 (Windows NT 10.0) " + "x" * 10_240 + " Android"


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        pytest.param(CHROME_WIN, "web", id="chrome-windows"),
        pytest.param(CHROME_MAC, "web", id="chrome-macos"),
        pytest.param(CHROME_LINUX, "web", id="chrome-linux"),
        pytest.param(CHROME_OS, "web", id="chrome-chromeos"),
        pytest.param(EDGE_WIN, "web", id="edge-windows"),
        pytest.param(EDGE_MAC, "web", id="edge-macos"),
        pytest.param(FIREFOX_WIN, "web", id="firefox-windows"),
        pytest.param(FIREFOX_MAC, "web", id="firefox-macos"),
        pytest.param(FIREFOX_LINUX, "web", id="firefox-linux"),
        pytest.param(FIREFOX_UBUNTU, "web", id="firefox-ubuntu"),
        pytest.param(SAFARI_MAC, "web", id="safari-macos"),
        pytest.param(OPERA_WIN, "web", id="opera-windows"),
        pytest.param(IPHONE_SAFARI, "mobile", id="iphone-safari"),
        pytest.param(IPHONE_CHROME, "mobile", id="iphone-chrome"),
        pytest.param(IPHONE_FIREFOX, "mobile", id="iphone-firefox"),
        pytest.param(IPHONE_WEBVIEW, "mobile", id="iphone-webview"),
        pytest.param(IPAD_SAFARI, "mobile", id="ipad-safari"),
        pytest.param(ANDROID_CHROME, "mobile", id="android-chrome"),
        pytest.param(ANDROID_REDUCED, "mobile", id="android-reduced-ua"),
        pytest.param(ANDROID_TABLET, "mobile", id="android-tablet"),
        pytest.param(ANDROID_FIREFOX, "mobile", id="android-firefox"),
        pytest.param(ANDROID_WEBVIEW, "mobile", id="android-webview"),
        pytest.param(SAMSUNG, "mobile", id="samsung-internet"),
        pytest.param(WINDOWS_PHONE, "mobile", id="windows-phone"),
        pytest.param(KINDLE, "mobile", id="kindle-silk"),
        pytest.param(OKHTTP, "mobile", id="okhttp"),
        pytest.param("OkHttp/3.14.9", "mobile", id="okhttp-mixed-case"),
        pytest.param(DALVIK, "mobile", id="dalvik"),
        pytest.param(CFNETWORK, "mobile", id="cfnetwork-ios"),
        pytest.param(EXPO, "mobile", id="expo-ios"),
        pytest.param("MyApp/7 Darwin/23.5.0", "mobile", id="darwin-only"),
        pytest.param(DART, "mobile", id="dart-io"),
        pytest.param(ALAMOFIRE, "mobile", id="slack-ios-alamofire"),
        pytest.param(DISCORD_ANDROID, "mobile", id="discord-android"),
        pytest.param("MyApp/2.0 ReactNative/0.74", "mobile", id="react-native"),
        pytest.param(MAC_CFNETWORK, "desktop", id="cfnetwork-macos"),
        pytest.param(ELECTRON, "desktop", id="electron-windows"),
        pytest.param(SLACK_MAC, "desktop", id="slack-macos"),
        pytest.param(SLACK_SSB, "desktop", id="slack-ssb-windows"),
        pytest.param(DISCORD, "desktop", id="discord-windows"),
        pytest.param(TEAMS, "desktop", id="teams-windows"),
        pytest.param(OBSIDIAN_LINUX, "desktop", id="electron-linux"),
        pytest.param(TAURI, "desktop", id="tauri"),
        pytest.param(NWJS, "desktop", id="nwjs"),
        pytest.param(GOOGLEBOT, "web", id="googlebot"),
        pytest.param(GOOGLEBOT_PHONE, "web", id="googlebot-smartphone"),
        pytest.param(CURL, "web", id="curl"),
        pytest.param(REQUESTS, "web", id="python-requests"),
        pytest.param("", "web", id="empty"),
        pytest.param("   ", "web", id="blank"),
        pytest.param(GARBAGE, "web", id="garbage-control-chars"),
        pytest.param("Android\x00\n", "mobile", id="nul-and-newline-around-token"),
        # Past the 512-byte cut, so never seen.
        pytest.param(HUGE, "web", id="10kb-token-after-cut"),
        pytest.param("iPhone " + "x" * 10_240, "mobile", id="10kb-token-before-cut"),
        # iPadOS Safari asks for desktop sites by default and cannot be told
        # from a Mac without client hints, which Safari does not send.
        pytest.param(SAFARI_MAC, "web", id="ipad-desktop-mode"),
    ],
)
def test_classify_user_agent(user_agent: str, expected: Platform) -> None:
    assert classify(stated=None, ch_mobile=None, user_agent=user_agent) == expected


@pytest.mark.parametrize(
    ("stated", "ch_mobile", "user_agent", "expected"),
    [
        pytest.param("desktop", None, IPHONE_SAFARI, "desktop", id="stated-beats-ua"),
        pytest.param("web", "?1", ELECTRON, "web", id="stated-beats-hint"),
        pytest.param("mobile", "?0", CHROME_WIN, "mobile", id="stated-mobile"),
        pytest.param(" MoBiLe \t", None, CHROME_WIN, "mobile", id="stated-mixed-case"),
        pytest.param("DESKTOP", None, CHROME_WIN, "desktop", id="stated-upper"),
        pytest.param("tv", None, ELECTRON, "desktop", id="stated-unknown-ignored"),
        pytest.param("", None, IPHONE_SAFARI, "mobile", id="stated-empty-ignored"),
        pytest.param("tv", "?1", CHROME_WIN, "mobile", id="stated-unknown-then-hint"),
        pytest.param(
            "web" + " " * 600 + "x",
            None,
            OKHTTP,
            "mobile",
            id="stated-long-garbage-ignored",
        ),
        pytest.param(None, "?1", CHROME_WIN, "mobile", id="hint-mobile"),
        pytest.param(None, " ?1 ", CHROME_WIN, "mobile", id="hint-mobile-padded"),
        pytest.param(None, "?0", CHROME_WIN, "web", id="hint-not-mobile-web"),
        pytest.param(None, "?0", ELECTRON, "desktop", id="hint-not-mobile-electron"),
        pytest.param(None, "?0", ANDROID_TABLET, "mobile", id="hint-not-mobile-tablet-ua"),
        pytest.param(None, "?1\x00", CHROME_WIN, "web", id="hint-malformed"),
        pytest.param(None, "1", CHROME_WIN, "web", id="hint-not-structured"),
    ],
)
def test_classify_precedence(
    stated: str | None, ch_mobile: str | None, user_agent: str, expected: Platform
) -> None:
    assert classify(stated=stated, ch_mobile=ch_mobile, user_agent=user_agent) == expected


def test_platforms() -> None:
    assert PLATFORMS == ("web", "mobile", "desktop")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("", "", id="empty"),
        pytest.param("a" * 512, "a" * 512, id="ascii-exact"),
        pytest.param("a" * 513, "a" * 512, id="ascii-over"),
        pytest.param("é" * 256, "é" * 256, id="two-byte-exact"),
        pytest.param("a" + "é" * 256, "a" + "é" * 255, id="two-byte-split"),
        pytest.param("€" * 200, "€" * 170, id="three-byte-split"),
        pytest.param("ab" + "😀" * 200, "ab" + "😀" * 127, id="four-byte-split"),
        pytest.param("Ünïcode ok", "Ünïcode ok", id="short-non-ascii"),
        pytest.param("a\ud800b", "ab", id="lone-surrogate-dropped"),
        pytest.param("x" * 10_240 + "é", "x" * 512, id="10kb"),
    ],
)
def test_clip(value: str, expected: str) -> None:
    clipped = clip(value)
    assert clipped == expected
    assert len(clipped.encode()) <= MAX_HEADER


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        pytest.param(CHROME_WIN, "Chrome 131 on Windows", id="chrome-windows"),
        pytest.param(CHROME_MAC, "Chrome 131 on macOS", id="chrome-macos"),
        pytest.param(CHROME_LINUX, "Chrome 131 on Linux", id="chrome-linux"),
        pytest.param(CHROME_OS, "Chrome 131 on ChromeOS", id="chrome-chromeos"),
        pytest.param(EDGE_WIN, "Edge 131 on Windows", id="edge-windows"),
        pytest.param(FIREFOX_WIN, "Firefox 133 on Windows", id="firefox-windows"),
        pytest.param(FIREFOX_MAC, "Firefox 133 on macOS", id="firefox-macos"),
        pytest.param(FIREFOX_UBUNTU, "Firefox 133 on Ubuntu", id="firefox-ubuntu"),
        pytest.param(SAFARI_MAC, "Safari 17 on macOS", id="safari-macos"),
        pytest.param(OPERA_WIN, "Opera 115 on Windows", id="opera-windows"),
        pytest.param(IPHONE_SAFARI, "Safari 17 on iOS", id="iphone-safari"),
        pytest.param(IPHONE_CHROME, "Chrome 131 on iOS", id="iphone-chrome"),
        pytest.param(IPHONE_FIREFOX, "Firefox 133 on iOS", id="iphone-firefox"),
        pytest.param(IPAD_SAFARI, "Safari 17 on iOS", id="ipad-safari"),
        pytest.param(ANDROID_CHROME, "Chrome 131 on Android", id="android-chrome"),
        pytest.param(ANDROID_FIREFOX, "Firefox 133 on Android", id="android-firefox"),
        pytest.param(ANDROID_WEBVIEW, "Chrome WebView 131 on Android", id="android-webview"),
        pytest.param(SAMSUNG, "Samsung Internet 26 on Android", id="samsung-internet"),
        pytest.param(ELECTRON, "Electron 28 on Windows", id="electron"),
        pytest.param(MAC_CFNETWORK, "Zoom 6 on macOS", id="cfnetwork-macos"),
        pytest.param(OKHTTP, "okhttp 4", id="okhttp"),
        pytest.param(DART, "Dart 3", id="dart-fallback-token"),
        pytest.param(ALAMOFIRE, "Slack 24 on iOS", id="slack-ios-fallback-token"),
        pytest.param(CURL, "curl 8", id="curl"),
        pytest.param("", "Unknown device", id="empty"),
        pytest.param(" \t", "Unknown device", id="blank"),
        pytest.param(GARBAGE, "Unknown device", id="garbage"),
        pytest.param("Mozilla/5.0", "Unknown device", id="mozilla-only"),
    ],
)
def test_device_label(user_agent: str, expected: str) -> None:
    assert device_label(user_agent) == expected


@pytest.mark.parametrize(
    "user_agent",
    [
        pytest.param("Evil\x00App/1.0\n\x1b[2J", id="control-chars"),
        pytest.param("App\u202eReversed/3.1", id="bidi-override"),
        pytest.param("A" * 300 + "/1", id="long-token"),
        pytest.param(HUGE, id="10kb"),
        pytest.param("😀" * 5_000, id="10kb-emoji"),
    ],
)
def test_device_label_is_short_and_printable(user_agent: str) -> None:
    label = device_label(user_agent)
    assert 0 < len(label) <= 100
    assert label.isprintable()


def test_device_label_is_cached_on_the_clipped_value() -> None:
    assert device_label(HUGE) is device_label(HUGE[:MAX_HEADER] + "different tail")
