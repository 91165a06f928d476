"""A few neutral first-person messages, one per theme, for stages that need prompts before a dataset is chosen."""

from __future__ import annotations

DEMO_MESSAGES: list[str] = [
    "I sent my timesheet to the payroll team on Monday.\nThey replied that it was entered into the system.",
    "I handed in my history essay at the school office before the deadline.\nThe teacher said she will return it next week.",
    "I asked my roommate whether he could water the plants while I am away.\nHe said he will check his schedule tonight.",
    "I returned a kettle to the shop with the receipt.\nThe clerk scanned the receipt and started the refund.",
    "I applied at the town hall for a new parking permit.\nThe office said the permit will be posted to me.",
    "I went to the clinic for my yearly blood test.\nThe nurse said the results will be sent by email.",
    "I told my landlord that the kitchen tap is dripping.\nHe said a plumber will come on Thursday.",
    "I booked a train ticket to visit my cousin next month.\nThe website sent me a confirmation number.",
]
NEUTRAL_SYSTEM = "Keep the reply to at most two sentences."
