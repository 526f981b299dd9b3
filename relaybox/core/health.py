"""An instance's health, as the console's overview and instance list show it.

| the instance                                             | health     |
|----------------------------------------------------------|------------|
| its credentials were refused (`valid: false`)            | `invalid`  |
| deliveries paused (subscription deactivated) or disabled | `paused`   |
| a delivery failed and waits for its next try             | `retrying` |
| anything else                                            | `healthy`  |

The first row that applies wins: an invalid instance gets no events, whatever else holds;
a paused one sends nothing, so its failed deliveries are not being retried.
"""

from __future__ import annotations

from enum import StrEnum


class Health(StrEnum):
    HEALTHY = "healthy"
    RETRYING = "retrying"
    PAUSED = "paused"
    INVALID = "invalid"


def health(*, valid: bool, subscription_active: bool, disabled: bool, retrying: bool) -> Health:
    if not valid:
        return Health.INVALID
    if not subscription_active or disabled:
        return Health.PAUSED
    if retrying:
        return Health.RETRYING
    return Health.HEALTHY


REASONS = {
    Health.HEALTHY: "Deliveries are going through.",
    Health.RETRYING: "A delivery failed and will be tried again.",
    Health.PAUSED: "Deliveries are paused: new notifications wait until they are resumed.",
    Health.INVALID: "Dropbox refused the credentials: events stop until it is re-authenticated.",
}
"""What each health means, in plain words (the badge's title)."""
