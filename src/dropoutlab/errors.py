"""The one exception class for mistakes a user can make."""


class DropoutlabError(Exception):
    """A problem with the user's input (study file, dataset file, flag, store).

    The command-line front end prints its message as one line, with no traceback.
    Bugs in dropoutlab itself raise ordinary exceptions and keep their traceback.
    """
