/*
 * Keeping customer-supplied URLs (webhooks, number feeds) away from our own network.
 *
 * A URL given to the API is fetched or posted to by our processes, from inside our network: a
 * URL naming a loopback or private address would let a customer reach services that are not
 * theirs (server-side request forgery). Two checks close that: at request time the API resolves
 * the URL's host and refuses private addresses with a 422, and at connection time libcurl's
 * socket callback refuses them again, since DNS may answer differently later (rebinding).
 * impactd's --allow-private-urls turns both off, for tests and local demos.
 *
 * Such requests go straight to the URL's host: libcurl would otherwise follow the proxy
 * variables of impactd's environment (http_proxy, all_proxy), and the connection-time check
 * would then see the proxy's address instead of the receiver's. A private proxy would fail every
 * delivery as a private address; a public one would carry requests to hosts nobody checked.
 */
#ifndef IMPACT_COMMON_NETGUARD_H
#define IMPACT_COMMON_NETGUARD_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/** Loopback, private, link-local, CGNAT, multicast and unspecified addresses, v4 and v6. */
bool netguard_is_private(const struct sockaddr *address);

/**
 * Resolves the host of an http(s) URL and checks every address it has. 0 when all are public,
 * -1 with the reason in `why` when one is private or the host does not resolve. Blocks for the
 * resolver's time (bounded by resolv.conf's timeout and attempts).
 */
int netguard_check_url(const char *url, char *why, size_t size);

/**
 * Prepares `curl` for a request to a customer's URL, the same way everywhere: http or https
 * only, no redirects (a redirect could lead anywhere), `timeout_ms` for the whole transfer, no
 * signals, our User-Agent, no proxy whatever the environment says, and, unless *allow_private,
 * a refusal at connection time of any address netguard_is_private accepts. allow_private must
 * outlive the transfer.
 */
void netguard_curl(CURL *curl, const char *url, long timeout_ms, const bool *allow_private);

/** Why a transfer prepared by netguard_curl failed, in words for logs and delivery records. */
const char *netguard_curl_error(CURLcode rc, bool allow_private);

#endif
