"""What the test suite shares: free ports, graph builders, one router launcher and the fake backends.

Fixtures stay in the ``conftest.py`` files; the code they wrap lives here, imported by name.
"""
