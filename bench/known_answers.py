"""A small document set with known answers, for measuring retrieval quality
(``bench/retrieval_quality.py`` and ``tests/retrieval/test_known_answers.py``).

Twelve short documents of a made-up company's handbook, three or four paragraphs each, and
questions whose answering passage is known by a phrase it holds. A third of the questions use
the passage's own words; the others ask in other words (synonyms, a paraphrase), which is
where a lexical search falls short and an embedding model that knows meaning helps.
"""

from __future__ import annotations

DOCUMENTS: dict[str, str] = {
    "leave.md": (
        "# Time off\n\n"
        "Every employee accrues twenty-five days of paid annual leave per calendar year, "
        "earned monthly. Up to five unused days may be carried over into the first quarter "
        "of the next year; the rest lapse on March 31.\n\n"
        "Sick days are not counted against annual leave. After three consecutive sick days, "
        "a note from a doctor is required by the people team.\n\n"
        "Parental leave is sixteen weeks at full pay for every new parent, whether by birth, "
        "adoption or surrogacy, and may be taken in up to three blocks within the child's "
        "first year."
    ),
    "expenses.md": (
        "# Expenses\n\n"
        "Submit receipts within thirty days of the purchase through the finance portal. "
        "Claims older than ninety days are not reimbursed.\n\n"
        "Meals while travelling are covered up to 60 euros a day. Alcohol is never "
        "reimbursed, and neither are minibar charges.\n\n"
        "Flights under six hours are booked in economy class. For longer flights, premium "
        "economy may be booked with the approval of a director."
    ),
    "security.md": (
        "# Security\n\n"
        "Laptops must use full-disk encryption and lock the screen after five minutes "
        "without use. A lost or stolen laptop is reported to the security desk within one "
        "hour.\n\n"
        "Passwords are kept in the company password manager; sharing them in chat or email "
        "is forbidden. Two-factor authentication with a hardware key is mandatory for "
        "production access.\n\n"
        "Suspicious emails are forwarded to phishing@ rather than opened; the security team "
        "answers within one working day."
    ),
    "onboarding.md": (
        "# Your first weeks\n\n"
        "On your first day you meet your buddy, a colleague from another team who answers "
        "the questions you would rather not ask your manager.\n\n"
        "During the first two weeks you ship a small change to production, so that you "
        "have walked the whole path from code review to deployment once.\n\n"
        "The probation period lasts six months, with check-ins at thirty, ninety and one "
        "hundred and fifty days."
    ),
    "remote.md": (
        "# Working from home\n\n"
        "Staff may work remotely up to three days a week; Tuesdays are the shared office "
        "day for every team.\n\n"
        "A one-time allowance of 800 euros pays for a desk, a chair and a monitor for the "
        "home office. Internet costs are reimbursed at 30 euros a month.\n\n"
        "Working from another country is allowed for up to four weeks a year, after "
        "checking tax rules with the people team."
    ),
    "deploys.md": (
        "# Deploying\n\n"
        "Deploys happen from the main branch only, after two approving reviews and a green "
        "pipeline. Nobody deploys on Friday afternoons.\n\n"
        "Every deploy goes first to a canary that takes five percent of traffic for fifteen "
        "minutes; error rates above the baseline roll it back automatically.\n\n"
        "Database migrations must be backwards compatible with the running release, so "
        "that a rollback never needs a manual schema change."
    ),
    "oncall.md": (
        "# On call\n\n"
        "Engineers join the on-call rotation after their probation, one week at a time, "
        "from Monday morning to Monday morning.\n\n"
        "A page must be acknowledged within ten minutes, day or night. If it is not, the "
        "secondary is paged, then the engineering manager.\n\n"
        "Each on-call week is compensated with two extra days off and a flat payment of "
        "300 euros."
    ),
    "benefits.md": (
        "# Benefits\n\n"
        "The company pays for private health insurance for employees and their families, "
        "dental care included.\n\n"
        "Each person has a learning budget of 1,500 euros a year for courses, books and "
        "conferences; unused budget does not roll over.\n\n"
        "The pension plan matches contributions up to five percent of the gross salary."
    ),
    "reviews.md": (
        "# Performance reviews\n\n"
        "Reviews happen twice a year, in April and October. Each review gathers feedback "
        "from at least three peers chosen with your manager.\n\n"
        "Salary changes are decided once a year, in the October cycle, and take effect "
        "from January.\n\n"
        "Promotions follow the career ladder; a promotion case is written by the manager "
        "and read by a committee from other departments."
    ),
    "office.md": (
        "# The office\n\n"
        "The office opens at seven in the morning and closes at nine in the evening; a "
        "badge opens the doors outside those hours.\n\n"
        "Lunch is served in the canteen from noon to two, free of charge, with a vegetarian "
        "choice every day.\n\n"
        "Bicycles are parked in the basement garage, which has showers and lockers."
    ),
    "data.md": (
        "# Customer data\n\n"
        "Customer data stays in the European region; copying it to a laptop is not "
        "allowed, even when encrypted.\n\n"
        "Personal data is deleted thirty days after a customer closes the account, unless "
        "the law requires it to be kept longer.\n\n"
        "Requests from customers to export their data are answered within one month, as "
        "the regulation requires."
    ),
    "travel.md": (
        "# Travel\n\n"
        "Business trips are booked through the travel desk at least two weeks ahead. "
        "Hotels are chosen from the approved list, up to 180 euros a night.\n\n"
        "Trains are preferred to flights for journeys under five hours.\n\n"
        "Travel insurance covers every business trip; the policy number is on the back of "
        "the company card."
    ),
}

#: (question, the file whose passage answers it, a phrase of that passage, in its own words?)
QUESTIONS: list[tuple[str, str, str, bool]] = [
    ("How many days of paid annual leave do employees get?", "leave.md", "twenty-five", True),
    ("Can I keep unused vacation days for next year?", "leave.md", "carried over", False),
    ("When do I need a doctor's note?", "leave.md", "three consecutive", True),
    ("How long can a new mother or father stay home with the baby?", "leave.md", "sixteen", False),
    ("How soon must receipts be submitted?", "expenses.md", "thirty days", True),
    ("Will the company pay for wine at dinner on a trip?", "expenses.md", "Alcohol", False),
    ("Can I fly business class to a conference overseas?", "expenses.md", "premium", False),
    ("What should I do if my laptop is stolen?", "security.md", "within one", True),
    ("Where do I store my credentials?", "security.md", "password manager", False),
    ("I got a strange message asking for my login, what now?", "security.md", "phishing", False),
    ("Who helps me in my first days besides my manager?", "onboarding.md", "buddy", False),
    ("How long is the probation period?", "onboarding.md", "six months", True),
    ("How many days a week may I work remotely?", "remote.md", "three days", True),
    ("Is there money to furnish my workspace at home?", "remote.md", "800 euros", False),
    ("Can I work abroad for a while?", "remote.md", "another country", False),
    ("Can we release on a Friday afternoon?", "deploys.md", "Friday", True),
    ("What happens if a new version causes more errors?", "deploys.md", "canary", False),
    ("Which rules apply to schema migrations?", "deploys.md", "backwards compatible", True),
    ("How fast must a page be acknowledged?", "oncall.md", "ten minutes", True),
    ("What do I get for being on call for a week?", "oncall.md", "extra days off", False),
    ("Does the health plan cover my children's teeth?", "benefits.md", "dental", False),
    ("How much can I spend on training each year?", "benefits.md", "1,500", False),
    ("How much does the company add to my retirement savings?", "benefits.md", "pension", False),
    ("How many peers give feedback in a review?", "reviews.md", "three peers", True),
    ("When do pay raises happen?", "reviews.md", "Salary changes", False),
    ("What time does the building open?", "office.md", "seven in the morning", False),
    ("Is lunch free?", "office.md", "free of charge", True),
    ("Where can I leave my bike?", "office.md", "basement", False),
    ("May I copy customer data to my laptop?", "data.md", "not", True),
    ("When is a closed account's personal information erased?", "data.md", "thirty days", False),
    ("How far ahead should business trips be booked?", "travel.md", "two weeks", True),
    ("Should I take the train or the plane for short trips?", "travel.md", "Trains", False),
]
