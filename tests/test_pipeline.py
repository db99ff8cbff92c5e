from voxgate.pipeline import speakable


def test_speakable_drops_markdown_but_keeps_words():
    assert speakable("**Paris** is the `capital`.\n# Notes\n> quoted") == "Paris is the capital . Notes quoted"
